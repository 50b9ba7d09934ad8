//! [`HiveError`]: why a hive could not be read, merged or written.

/// Result alias.
pub type Result<T, E = HiveError> = std::result::Result<T, E>;

/// Why a hive could not be read, merged or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HiveError {
    /// The file is not a hive this reader accepts (signature, version, size, checksum).
    #[error("not a registry hive: {0}")]
    NotAHive(String),
    /// A structure inside the hive is malformed: an offset or length out of bounds, a wrong
    /// signature, a count the cell cannot hold.
    #[error("corrupt hive at offset {offset:#x}: {what}")]
    Corrupt {
        /// Offset of the cell (relative to the first hive bin).
        offset: u32,
        /// What is wrong.
        what: String,
    },
    /// A key is reached twice while walking (a cycle or shared subtree), or keys nest deeper
    /// than Windows allows.
    #[error("corrupt hive: {0}")]
    Structure(String),
    /// Reading would go past a bound (value data read over and over through shared cells).
    #[error("hive too large to read: {0}")]
    TooLarge(String),
    /// A registry path or value the caller gave is not valid.
    #[error("{0}")]
    Invalid(String),
}

impl HiveError {
    pub(crate) fn corrupt(offset: u32, what: impl Into<String>) -> Self {
        HiveError::Corrupt {
            offset,
            what: what.into(),
        }
    }
}
