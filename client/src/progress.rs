//! Progress reporting for transfers, on stderr: a bar per blob on a terminal (indicatif), a
//! one-line summary every few seconds otherwise, nothing with `-q`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_storage::{ByteStream, Digest};

/// Receives transfer events. Every method has an empty default.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// A blob of `size` bytes starts moving.
    fn begin(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more of it moved.
    fn advance(&self, _digest: &Digest, _bytes: u64) {}
    /// It is done: `how` is "copied", "exists", "mounted", "skipped".
    fn end(&self, _digest: &Digest, _how: &str) {}
}

/// Counts the bytes of `stream` into `progress`.
pub fn counted(stream: ByteStream, progress: Option<Arc<dyn Progress>>, digest: &Digest) -> ByteStream {
    match progress {
        None => stream,
        Some(p) => {
            let digest = digest.clone();
            Box::pin(stream.inspect_ok(move |b| p.advance(&digest, b.len() as u64)))
        }
    }
}

fn short(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// A bar per blob on a terminal.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(short(digest));
        self.bars.lock().expect("bars").insert(digest.to_string(), bar);
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("bars").get(digest.as_ref()) {
            bar.inc(bytes);
        }
    }

    fn end(&self, digest: &Digest, how: &str) {
        let bar = self.bars.lock().expect("bars").remove(digest.as_ref());
        match bar {
            Some(bar) => bar.finish_with_message(how.to_owned()),
            None => {
                let _ = self.multi.println(format!("{} {how}", short(digest)));
            }
        }
    }
}

/// A line like `pull: 3/7 blobs done, 120.0 MiB of 1.0 GiB, 95.2 MB/s` every `every`, for logs.
#[derive(Debug)]
pub struct Lines {
    label: String,
    started: Instant,
    total: AtomicU64,
    moved: AtomicU64,
    begun: AtomicU64,
    done: AtomicU64,
    stop: Arc<tokio::sync::Notify>,
}

impl Lines {
    /// Starts printing every `every` until dropped (needs a tokio runtime).
    pub fn start(label: &str, every: Duration) -> Arc<Self> {
        let lines = Arc::new(Lines {
            label: label.to_owned(),
            started: Instant::now(),
            total: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: Arc::new(tokio::sync::Notify::new()),
        });
        let weak = Arc::downgrade(&lines);
        let stop = lines.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.notified() => return,
                }
                match weak.upgrade() {
                    Some(l) => eprintln!("{}", l.line()),
                    None => return,
                }
            }
        });
        lines
    }

    /// The summary line now.
    pub fn line(&self) -> String {
        let moved = self.moved.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{}: {}/{} blobs done, {} of {}, {:.1} MB/s",
            self.label,
            self.done.load(Ordering::Relaxed),
            self.begun.load(Ordering::Relaxed),
            human(moved),
            human(self.total.load(Ordering::Relaxed)),
            moved as f64 / secs / 1e6
        )
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl Progress for Lines {
    fn begin(&self, _digest: &Digest, size: u64) {
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(size, Ordering::Relaxed);
    }

    fn advance(&self, _digest: &Digest, bytes: u64) {
        self.moved.fetch_add(bytes, Ordering::Relaxed);
    }

    fn end(&self, _digest: &Digest, _how: &str) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// `1.5 GiB`-style sizes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
    }

    #[tokio::test]
    async fn the_summary_line_counts_blobs_and_bytes() {
        let lines = Lines::start("pull", Duration::from_secs(3600));
        let d = strata_storage::digest::sha256(b"x");
        lines.begin(&d, 2048);
        lines.advance(&d, 1024);
        assert!(
            lines.line().starts_with("pull: 0/1 blobs done, 1.0 KiB of 2.0 KiB"),
            "{}",
            lines.line()
        );
        lines.end(&d, "copied");
        assert!(lines.line().starts_with("pull: 1/1 blobs done"), "{}", lines.line());
    }
}
