//! The one error type of this crate.
//!
//! Every fallible function returns [`StoreError`]. Callers branch on the variant (or on
//! [`StoreError::code`], a stable string meant to cross the IPC boundary); the `Display` text is
//! written for a person and can be shown as is.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database was written by a newer version of Hearth. It was left untouched.
    #[error(
        "the database at {path} was created by a newer version of Hearth (schema {found}, this \
         version understands up to {supported}); it was left untouched. Update Hearth to open it."
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The disk (or the configured maximum database size) is full. The operation's
    /// transaction was rolled back: nothing of it was written.
    #[error("the disk is full (or the database reached its size limit); nothing was saved")]
    DiskFull,

    /// Another process holds the database locked longer than the busy timeout.
    #[error("the database is busy (another Hearth window or process is using it)")]
    Busy,

    /// SQLite reported damage while the store was in use. Reopening the store moves the damaged
    /// file aside and starts a fresh one (see [`crate::RecoveryNotice`]).
    #[error("the database file is damaged: {detail}")]
    Corrupt { detail: String },

    /// A file given to [`crate::Store::restore_from`] is not a usable Hearth backup.
    #[error("{path} is not a usable Hearth backup: {reason}")]
    InvalidBackup { path: PathBuf, reason: String },

    /// No per-user data folder could be determined (no home directory) and none was given.
    #[error("no data folder could be determined: set HEARTH_DATA_DIR or choose a folder")]
    NoDataDir,

    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The referenced row does not exist (it may have been deleted).
    #[error("{entity} {id} does not exist")]
    NotFound { entity: &'static str, id: String },

    /// A message's parent belongs to another conversation.
    #[error("message {parent} is not part of conversation {conversation}")]
    ParentInOtherConversation { parent: i64, conversation: i64 },

    /// A streaming update or finish was sent for a message that is not streaming.
    #[error("message {message} is not streaming (its status is {status})")]
    NotStreaming { message: i64, status: String },

    /// An imported conversation file was malformed.
    #[error("the conversation file cannot be imported: {0}")]
    InvalidImport(String),

    /// An imported conversation file was written by a newer version of Hearth.
    #[error(
        "the conversation file has format version {found}; this version of Hearth reads up to \
         {supported}"
    )]
    UnsupportedExportVersion { found: u32, supported: u32 },

    /// A value does not fit the column it goes to (for example a count above i64::MAX).
    #[error("{0}")]
    InvalidValue(String),

    /// A setting exists but holds a different type than the one asked for.
    #[error("setting {key} holds a {found} value, not a {wanted}")]
    SettingType {
        key: String,
        found: &'static str,
        wanted: &'static str,
    },

    /// Applying a schema migration failed; the database stays at the previous version.
    #[error("upgrading the database to schema version {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// Any other SQLite error.
    #[error("database error: {0}")]
    Database(#[source] rusqlite::Error),
}

impl StoreError {
    /// A stable, machine-readable code for this error, for the UI to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NewerSchema { .. } => "store.newer_schema",
            StoreError::DiskFull => "store.disk_full",
            StoreError::Busy => "store.busy",
            StoreError::Corrupt { .. } => "store.corrupt",
            StoreError::InvalidBackup { .. } => "store.invalid_backup",
            StoreError::NoDataDir => "store.no_data_dir",
            StoreError::Io { .. } => "store.io",
            StoreError::NotFound { .. } => "store.not_found",
            StoreError::ParentInOtherConversation { .. } => "store.invalid_parent",
            StoreError::NotStreaming { .. } => "store.not_streaming",
            StoreError::InvalidImport(_) => "store.invalid_import",
            StoreError::UnsupportedExportVersion { .. } => "store.unsupported_export_version",
            StoreError::InvalidValue(_) => "store.invalid_value",
            StoreError::SettingType { .. } => "store.setting_type",
            StoreError::Migration { .. } => "store.migration",
            StoreError::Database(_) => "store.database",
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Whether SQLite's error means the file is damaged or not a database at all.
pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                StoreError::Corrupt {
                    detail: err.to_string(),
                }
            }
            _ => StoreError::Database(err),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::InvalidValue(format!("JSON value: {err}"))
    }
}
