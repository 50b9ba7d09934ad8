//! Property tests of the tar reader that sees layers from the network: arbitrary bytes, and
//! valid layers with bytes flipped in their headers, through the Linux unpacker and the Windows
//! importer. For any input: no panic, and nothing outside the destination changes, whether the
//! layer is accepted or refused.

use proptest::prelude::*;
use strata_runtime::store::LayerStore;
use strata_runtime::unpack::{Compression, Options, unpack_linux};
use tar::EntryType;

use crate::layer::{Layer, gzip};
use crate::sandbox::Sandbox;

/// A layer with one entry of each kind the unpacker handles.
fn valid_layer(windows: bool) -> Vec<u8> {
    let mut l = Layer::new();
    let top = if windows { "Files/" } else { "" };
    if windows {
        l.dir("Files", 0o755).dir("Hives", 0o755);
    }
    l.dir(&format!("{top}dir/"), 0o755)
        .file(&format!("{top}dir/file"), 0o644, b"content of the file")
        .symlink(&format!("{top}dir/link"), "file")
        .hardlink(&format!("{top}dir/hard"), &format!("{top}dir/file"))
        .pax(&[("path", format!("{top}dir/a-long-pax-name").as_bytes())])
        .file("placeholder", 0o644, b"pax");
    if !windows {
        l.file("dir/.wh.gone", 0o644, b"")
            .node(EntryType::Char, "dev", 0o600, 1, 3);
    }
    l.finish()
}

/// `layer` with each (position, byte) applied, positions taken modulo its length.
fn mutated(mut layer: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    let len = layer.len();
    for &(at, byte) in flips {
        layer[at % len] = byte;
    }
    layer
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_or_escape(data in prop::collection::vec(any::<u8>(), 0..4096), gzipped in any::<bool>()) {
        let sandbox = Sandbox::new();
        let (data, compression) = if gzipped { (gzip(&data), Compression::Gzip) } else { (data, Compression::None) };
        let _ = unpack_linux(&data[..], compression, &sandbox.dest, &Options::default());
        sandbox.assert_untouched();
    }

    #[test]
    fn damaged_linux_layers_never_panic_or_escape(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..12)) {
        let sandbox = Sandbox::new();
        let layer = mutated(valid_layer(false), &flips);
        let _ = unpack_linux(&layer[..], Compression::None, &sandbox.dest, &Options::default());
        sandbox.assert_untouched();
    }

    #[test]
    fn damaged_windows_layers_never_panic_or_escape(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..12)) {
        let sandbox = Sandbox::new();
        let store = LayerStore::open(&sandbox.dest.join("layers")).unwrap();
        let tar = sandbox.dest.join("layer.tar");
        std::fs::write(&tar, mutated(valid_layer(true), &flips)).unwrap();
        let _ = store.import_tar(&tar, "fuzzed", "windows", None);
        sandbox.assert_untouched();
    }
}
