//! Where the database lives.
//!
//! The data folder is, in order of precedence:
//! 1. the folder the caller passes (the app's "data folder" setting, for portable use);
//! 2. the environment variable `HEARTH_DATA_DIR` (tests, scripts);
//! 3. the per-user data folder of the OS (`~/.local/share/hearth` on Linux,
//!    `~/Library/Application Support/dev.hearth.Hearth` on macOS,
//!    `%APPDATA%\hearth\Hearth\data` on Windows).
//!
//! The database file inside it is [`DATABASE_FILE_NAME`].

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Environment variable that overrides the OS data folder.
pub const DATA_DIR_ENV: &str = "HEARTH_DATA_DIR";

/// File name of the database inside the data folder.
pub const DATABASE_FILE_NAME: &str = "hearth.sqlite3";

/// Resolves the data folder (see the module documentation for the order).
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "hearth", "Hearth")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or(StoreError::NoDataDir)
}

/// The database file for a data folder chosen as [`data_dir`] does.
pub fn database_path(explicit_data_dir: Option<&Path>) -> Result<PathBuf> {
    Ok(data_dir(explicit_data_dir)?.join(DATABASE_FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_folder_wins() {
        let p = database_path(Some(Path::new("/portable/hearth"))).unwrap();
        assert_eq!(p, Path::new("/portable/hearth").join(DATABASE_FILE_NAME));
    }
}
