//! Printing results, and the small argument conversions every verb group uses.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strata_client::commands::Target;
use strata_client::progress::{Bars, Lines, Progress};
use strata_client::transfer::Report;
use strata_client::{ClientError, Reference};

use crate::args::{Format, Global};

/// Prints a line on stdout, like `println!`, but a reader that went away (`strata images |
/// head -1`) ends the program quietly with the code a shell gives a process SIGPIPE killed,
/// instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::emit(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// The body of [`outln!`].
pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        stdout_failed(&e);
    }
}

/// Ends the program after a failed write to stdout: quietly (141) if the reader went away.
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("strata: write stdout: {e}");
    std::process::exit(1);
}

/// Writes to a buffered stdout (many lines at once: `reg query -r`), flushed at the end.
pub(crate) fn buffered<T>(write: impl FnOnce(&mut dyn Write) -> std::io::Result<T>) -> T {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    match write(&mut out).and_then(|t| out.flush().map(|()| t)) {
        Ok(t) => t,
        Err(e) => stdout_failed(&e),
    }
}

/// Copies `from` to stdout (file contents, logs, raw manifests).
pub(crate) fn copy_to_stdout(from: &mut impl Read) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = std::io::copy(from, &mut out).and_then(|_| out.flush()) {
        stdout_failed(&e);
    }
}

/// Bars on a terminal, a summary line every 5 s otherwise, nothing with -q.
pub(crate) fn progress(global: &Global, label: &str) -> Option<Arc<dyn Progress>> {
    if global.quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Arc::new(Bars::default()))
    } else {
        Some(Lines::start(label, Duration::from_secs(5)))
    }
}

pub(crate) fn print_report(global: &Global, what: &str, target: &str, report: &Report) {
    if global.format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(report).expect("json"));
        return;
    }
    if !global.quiet {
        eprintln!(
            "{what} {target}: {} copied, {} already there, {} mounted, {} foreign skipped ({} bytes)",
            report.blobs_copied, report.blobs_existing, report.blobs_mounted, report.blobs_skipped, report.bytes
        );
    }
    outln!("{}", report.digest);
}

pub(crate) fn print_list(global: &Global, items: &[String], key: &str) {
    if global.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ key: items })).expect("json")
        );
    } else {
        for item in items {
            outln!("{item}");
        }
    }
}

pub(crate) fn print_value(value: &Value) {
    outln!("{}", serde_json::to_string_pretty(value).expect("json"));
}

/// A registry reference argument.
pub(crate) fn reference(value: &str) -> Result<Reference, ClientError> {
    match Target::parse(value)? {
        Target::Registry(r) => Ok(r),
        _ => Err(ClientError::Usage(format!("{value:?}: expected a registry reference"))),
    }
}

/// A registry argument: a host, or a reference whose host is taken.
pub(crate) fn registry_host(value: &str) -> String {
    let trimmed = value
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match trimmed {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.split('/').next().unwrap_or(other).to_owned(),
    }
}
