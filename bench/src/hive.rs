//! `hive-bench generate DIR [--mib N]`: the inputs of `bench/hive.sh`. A synthetic SOFTWARE
//! hive of about N MiB (default 50) of vendor, product and version keys with string, number,
//! binary and multi-string values, and three delta hives that each change about 1% of the
//! version keys (changed, added and deleted values, deleted keys, a supersede-local key).
//! Written as `DIR/SOFTWARE` (the base hive alone, for hivexregedit) and as four Windows layer
//! tars: `DIR/base.tar` (`Files/Windows/System32/config/SOFTWARE`) and `DIR/delta{1,2,3}.tar`
//! (`Hives/SOFTWARE_Delta`), for `strata import`.

use std::path::{Path, PathBuf};

use strata_hive::testing::{binary, deleted, dword, key, multi, sz};
use strata_hive::{Key, Semantics, WriteOptions, write};

/// About how many bytes one version key takes in the hive (its ten values and itself).
const LEAF_BYTES: usize = 1056;
const VENDORS: usize = 40;
const PRODUCTS: usize = 40;

fn leaf(v: usize, p: usize, n: usize) -> Key {
    let seed = (v * 7 + p * 13 + n) as u32;
    key(
        &format!("{n}.{}.{}", seed % 10, seed % 100),
        vec![
            sz("DisplayName", &format!("Product {p} of vendor {v}, version {n}")),
            sz(
                "InstallLocation",
                &format!("C:\\Program Files\\Vendor{v}\\Product{p}\\{n}"),
            ),
            sz("Publisher", &format!("Vendor number {v} Incorporated")),
            dword("Installed", 1),
            dword("Language", 1033 + seed % 5),
            dword("EstimatedSize", seed.wrapping_mul(2_654_435_761) % 1_000_000),
            binary("Signature", 96, seed as u8),
            multi("Features", &["Core", "Docs", "Samples"]),
            sz(
                "UninstallString",
                &format!("MsiExec.exe /X{{{v:08}-{p:04}-{n:04}-0000-000000000000}}"),
            ),
            sz("", "default value"),
        ],
        vec![],
    )
}

fn base(versions: usize) -> Key {
    let vendors = (0..VENDORS)
        .map(|v| {
            let products = (0..PRODUCTS)
                .map(|p| {
                    key(
                        &format!("Product{p}"),
                        vec![dword("Count", versions as u32)],
                        (0..versions).map(|n| leaf(v, p, n)).collect(),
                    )
                })
                .collect();
            key(
                &format!("Vendor{v}"),
                vec![sz("Url", &format!("https://vendor{v}.example"))],
                products,
            )
        })
        .collect();
    key("ROOT", vec![], vec![key("Vendors", vec![], vendors)])
}

/// The path nodes down to the version key of (vendor, product, version), made normal and
/// inheriting their class, ending in `last`.
fn path_to(root: &mut Key, v: usize, p: usize, last: Key) {
    let vendors = root.subkey_or_insert("Vendors");
    vendors.inherit_class = true;
    let vendor = vendors.subkey_or_insert(&format!("Vendor{v}"));
    vendor.inherit_class = true;
    let product = vendor.subkey_or_insert(&format!("Product{p}"));
    product.inherit_class = true;
    product.subkeys.push(last);
}

/// Delta `d` (1 to 3): about 1% of the version keys changed.
fn delta(d: usize, versions: usize) -> Key {
    let mut root = Key {
        inherit_class: true,
        ..Key::new("ROOT")
    };
    let total = VENDORS * PRODUCTS * versions;
    for i in (d..total).step_by(97) {
        let (v, p, n) = (i / (PRODUCTS * versions), (i / versions) % PRODUCTS, i % versions);
        let name = leaf(v, p, n).name;
        let node = match i % 4 {
            // Deleted key.
            0 => Key {
                semantics: Semantics::Tombstone,
                ..Key::new(name)
            },
            // Only its own values from here on.
            1 => Key {
                semantics: Semantics::SupersedeLocal,
                ..key(
                    &name,
                    vec![sz("DisplayName", &format!("Replaced in delta {d}"))],
                    vec![],
                )
            },
            // Changed, added and deleted values.
            _ => Key {
                inherit_class: true,
                ..key(
                    &name,
                    vec![
                        sz("DisplayName", &format!("Updated in delta {d}")),
                        dword(&format!("Patch{d}"), d as u32),
                        deleted("Signature"),
                    ],
                    vec![],
                )
            },
        };
        path_to(&mut root, v, p, node);
    }
    root
}

/// A Windows layer tar holding `file` at `path` (with its directories).
fn layer_tar(out: &Path, path: &str, file: &[u8]) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(std::fs::File::create(out)?);
    let parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        builder.append_data(&mut h, format!("{}/", parts[..i].join("/")), std::io::empty())?;
    }
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(file.len() as u64);
    h.set_cksum();
    builder.append_data(&mut h, path, file)?;
    builder.into_inner()?.sync_all()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("generate"), Some(dir)) = (args.first().map(String::as_str), args.get(1)) else {
        return Err("usage: hive-bench generate DIR [--mib N]".into());
    };
    let mib: usize = match args.get(2).map(String::as_str) {
        Some("--mib") => args.get(3).ok_or("--mib N")?.parse()?,
        _ => 50,
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let versions = (mib * 1024 * 1024 / LEAF_BYTES / (VENDORS * PRODUCTS)).max(1);
    let options = |layered| WriteOptions {
        layered,
        file_name: "SOFTWARE".into(),
        timestamp: 133_000_000_000_000_000,
    };
    let base_hive = write(&base(versions), &options(false))?;
    std::fs::write(dir.join("SOFTWARE"), &base_hive)?;
    layer_tar(
        &dir.join("base.tar"),
        "Files/Windows/System32/config/SOFTWARE",
        &base_hive,
    )?;
    let mut sizes = vec![base_hive.len()];
    for d in 1..=3 {
        let delta_hive = write(&delta(d, versions), &options(true))?;
        sizes.push(delta_hive.len());
        layer_tar(&dir.join(format!("delta{d}.tar")), "Hives/SOFTWARE_Delta", &delta_hive)?;
    }
    println!(
        "base hive {:.1} MiB ({} version keys), deltas {:?} KiB",
        sizes[0] as f64 / 1048576.0,
        VENDORS * PRODUCTS * versions,
        sizes[1..].iter().map(|s| s / 1024).collect::<Vec<_>>()
    );
    Ok(())
}
