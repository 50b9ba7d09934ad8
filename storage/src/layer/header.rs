//! The header of one layer entry with its PAX and GNU extension records applied.
//!
//! The tar crate is used in raw mode, so that extension records (which it would otherwise read
//! into memory whatever their size) pass through [`Extensions`], where the caller has already
//! bounded their size. Precedence follows Go's `archive/tar` (which wrote most layers): a GNU long
//! name beats a PAX `path`, which beats the header; a PAX `size`, `uid`, `gid` or `mtime` beats the
//! header field.

use tar::PaxExtensions;

use super::{TarError, corrupt, shown};

/// The kinds of entry a layer may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    HardLink,
    /// A character device (whiteouts, in overlayfs form).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

/// A modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mtime {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: u32,
}

/// Everything the unpacker needs to know about one entry, before its content.
#[derive(Debug)]
pub struct EntryHeader {
    /// The name as the layer spells it (not yet validated).
    pub name: Vec<u8>,
    /// The link target of symbolic and hard links (not yet validated), otherwise empty.
    pub link: Vec<u8>,
    /// What the entry is.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Content size in bytes.
    pub size: u64,
    /// Whether the content follows the header without the tar crate knowing: a PAX `size` record
    /// with a zero size field, which is how Go writes files over 8 GiB.
    pub size_from_pax_only: bool,
    /// Device major and minor numbers.
    pub device: (u32, u32),
    /// Extended attributes from `SCHILY.xattr.*` records, as (name, value).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Every PAX record of the entry, in archive order, as read.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where the content starts in the uncompressed tar stream.
    pub offset: u64,
}

/// Which extension record a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExtensionKind {
    /// PAX extended header (`x`).
    Pax,
    /// GNU long name (`L`).
    LongName,
    /// GNU long link target (`K`).
    LongLink,
}

/// The extension records read since the last real entry.
#[derive(Debug, Default)]
pub(super) struct Extensions {
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extensions {
    /// Whether records are waiting for an entry.
    pub(super) fn is_pending(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link.is_some()
    }

    /// Stores one record; two of the same kind for one entry make the archive ambiguous.
    pub(super) fn set(&mut self, kind: ExtensionKind, data: Vec<u8>) -> Result<(), TarError> {
        let slot = match kind {
            ExtensionKind::Pax => &mut self.pax,
            ExtensionKind::LongName => &mut self.long_name,
            ExtensionKind::LongLink => &mut self.long_link,
        };
        if slot.is_some() {
            return Err(corrupt(None, format!("two {kind:?} records describe the same entry")));
        }
        *slot = Some(data);
        Ok(())
    }

    /// Consumes the pending records and combines them with the header of the real entry.
    pub(super) fn resolve(&mut self, header: &tar::Header) -> Result<EntryHeader, TarError> {
        let Extensions {
            pax,
            long_name,
            long_link,
        } = std::mem::take(self);
        let pax = match &pax {
            Some(data) => Pax::parse(data, &header.path_bytes())?,
            None => Pax::default(),
        };
        let name = pick(long_name, pax.path, header.path_bytes().into_owned(), "name")?;
        let header_link = header.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
        let link = pick(long_link, pax.linkpath, header_link, "link target")?;
        let bad = |e: std::io::Error| corrupt(Some(&name), e);

        let type_byte = header.entry_type().as_byte();
        let kind = match type_byte {
            b'0' | b'7' => Kind::Regular,
            // Pre-POSIX archives mark directories with a trailing slash only.
            b'\0' if name.ends_with(b"/") => Kind::Directory,
            b'\0' => Kind::Regular,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::CharDevice,
            b'4' => Kind::BlockDevice,
            b'5' => Kind::Directory,
            b'6' => Kind::Fifo,
            other => {
                return Err(TarError::UnsupportedEntryType {
                    entry: shown(&name),
                    kind: describe_type(other),
                });
            }
        };
        if pax.sparse {
            return Err(TarError::UnsupportedEntryType {
                entry: shown(&name),
                kind: "PAX sparse file (GNU.sparse records)".into(),
            });
        }

        let header_size = header.entry_size().map_err(bad)?;
        let (size, size_from_pax_only) = match pax.size {
            None => (header_size, false),
            Some(s) if s == header_size => (s, false),
            Some(s) if header_size == 0 => (s, true),
            Some(s) => {
                return Err(corrupt(
                    Some(&name),
                    format!("PAX size {s} contradicts the header size {header_size}"),
                ));
            }
        };
        let id = |value: u64, what: &str| {
            u32::try_from(value)
                .ok()
                .filter(|&v| v != u32::MAX)
                .ok_or_else(|| corrupt(Some(&name), format!("{what} {value} is out of range")))
        };
        let uid = id(pax.uid.map_or_else(|| header.uid(), Ok).map_err(bad)?, "uid")?;
        let gid = id(pax.gid.map_or_else(|| header.gid(), Ok).map_err(bad)?, "gid")?;
        let mtime = match pax.mtime {
            Some(m) => m,
            None => Mtime {
                secs: i64::try_from(header.mtime().map_err(bad)?)
                    .map_err(|_| corrupt(Some(&name), "mtime out of range"))?,
                nanos: 0,
            },
        };
        let device = match kind {
            Kind::CharDevice | Kind::BlockDevice => (
                header.device_major().map_err(bad)?.unwrap_or(0),
                header.device_minor().map_err(bad)?.unwrap_or(0),
            ),
            _ => (0, 0),
        };
        Ok(EntryHeader {
            mode: header.mode().map_err(bad)? & 0o7777,
            name,
            link,
            kind,
            uid,
            gid,
            mtime,
            size,
            size_from_pax_only,
            device,
            xattrs: pax.xattrs,
            pax: pax.records,
            offset: 0,
        })
    }
}

/// The GNU record if present (without its NUL terminator), else the PAX record, else the header.
fn pick(gnu: Option<Vec<u8>>, pax: Option<Vec<u8>>, header: Vec<u8>, what: &str) -> Result<Vec<u8>, TarError> {
    match (gnu, pax) {
        (Some(mut gnu), pax) => {
            while gnu.last() == Some(&0) {
                gnu.pop();
            }
            match pax {
                Some(pax) if pax != gnu => Err(corrupt(Some(&gnu), format!("GNU long {what} and PAX {what} disagree"))),
                _ => Ok(gnu),
            }
        }
        (None, Some(pax)) => Ok(pax),
        (None, None) => Ok(header),
    }
}

fn describe_type(byte: u8) -> String {
    let what = match byte {
        b'S' => "GNU sparse file",
        b'V' => "tape volume header",
        b'M' => "GNU multi-volume continuation",
        b'D' => "GNU dump directory",
        b'x' | b'g' | b'L' | b'K' => "misplaced extension header",
        _ => "unknown",
    };
    format!("{:?} ({what})", char::from(byte))
}

/// The PAX records this unpacker understands.
#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Mtime>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Pax {
    /// Parses PAX records; later records override earlier ones, as POSIX says.
    fn parse(data: &[u8], header_name: &[u8]) -> Result<Self, TarError> {
        let mut pax = Pax::default();
        for record in PaxExtensions::new(data) {
            let record = record.map_err(|e| corrupt(Some(header_name), format!("bad PAX record: {e}")))?;
            let (key, value) = (record.key_bytes(), record.value_bytes());
            pax.records.push((key.to_vec(), value.to_vec()));
            let number = || -> Result<u64, TarError> {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| corrupt(Some(header_name), format!("bad PAX {} record", shown(key))))
            };
            match key {
                b"path" => pax.path = Some(value.to_vec()),
                b"linkpath" => pax.linkpath = Some(value.to_vec()),
                b"size" => pax.size = Some(number()?),
                b"uid" => pax.uid = Some(number()?),
                b"gid" => pax.gid = Some(number()?),
                b"mtime" => {
                    let bad = || corrupt(Some(header_name), "bad PAX mtime record");
                    pax.mtime = Some(parse_pax_time(value).ok_or_else(bad)?);
                }
                _ if key.starts_with(b"GNU.sparse.") => pax.sparse = true,
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        pax.xattrs.retain(|(n, _)| n != name);
                        pax.xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
        Ok(pax)
    }
}

/// Parses a PAX time: `[-]seconds[.fraction]`.
fn parse_pax_time(value: &[u8]) -> Option<Mtime> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: u32 = digits.parse().ok()?;
    Some(match (negative, nanos) {
        (false, _) => Mtime { secs, nanos },
        (true, 0) => Mtime { secs: -secs, nanos: 0 },
        (true, _) => Mtime {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction_and_sign() {
        assert_eq!(
            parse_pax_time(b"1700000000.25"),
            Some(Mtime {
                secs: 1_700_000_000,
                nanos: 250_000_000
            })
        );
        assert_eq!(parse_pax_time(b"12"), Some(Mtime { secs: 12, nanos: 0 }));
        assert_eq!(
            parse_pax_time(b"-1.5"),
            Some(Mtime {
                secs: -2,
                nanos: 500_000_000
            })
        );
        assert_eq!(parse_pax_time(b"1e5"), None);
        assert_eq!(parse_pax_time(b""), None);
    }
}
