//! Whole-database backup and restore with SQLite's online backup API.
//!
//! [`Store::backup_to`] copies a consistent snapshot while the app keeps working (reads and
//! writes continue; the copy is of the moment it started). The result is one self-contained
//! SQLite file (rollback-journal mode, no `-wal` companion), written under a temporary name and
//! renamed into place, so a half-written backup never carries the final name.
//!
//! [`Store::restore_from`] first checks the file (a SQLite database, a schema this build
//! understands, `quick_check` ok), then replaces the whole content of the open database with
//! it in one step, then migrates it if it came from an older version. Streaming text waiting
//! in memory is written before a backup and dropped by a restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{is_corruption, Result, StoreError};
use crate::schema::{self, LATEST_SCHEMA_VERSION};
use crate::store::{lock, Store};

/// How long a backup step may keep finding the source or destination locked.
const LOCKED_PATIENCE: Duration = Duration::from_secs(10);

fn run_backup(from: &Connection, to: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(from, to)?;
    let started = Instant::now();
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if started.elapsed() > LOCKED_PATIENCE {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked during the backup".into()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
    }
}

impl Store {
    /// Writes a copy of the whole database to `dest` (replacing it). Returns its size in bytes.
    pub fn backup_to(&self, dest: &Path) -> Result<u64> {
        self.flush_streaming()?;
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(format!(".partial-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> Result<()> {
            let mut out = Connection::open(&tmp)?;
            {
                let reader = self.lock_reader();
                run_backup(&reader, &mut out)?;
            }
            // A single self-contained file: rollback journal instead of WAL.
            let _: String =
                out.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
            out.close().map_err(|(_, e)| e)?;
            let file = std::fs::File::open(&tmp)
                .map_err(|e| StoreError::io("cannot open the backup", &tmp, e))?;
            file.sync_all()
                .map_err(|e| StoreError::io("cannot write the backup", &tmp, e))?;
            std::fs::rename(&tmp, dest)
                .map_err(|e| StoreError::io("cannot put the backup in place at", dest, e))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::metadata(dest)
            .map(|m| m.len())
            .map_err(|e| StoreError::io("cannot read", dest, e))
    }

    /// Replaces the database's whole content by the backup at `src` (see the module
    /// documentation). A file that fails the checks leaves the database unchanged.
    pub fn restore_from(&self, src: &Path) -> Result<()> {
        let invalid = |reason: String| StoreError::InvalidBackup {
            path: src.to_path_buf(),
            reason,
        };
        if !src.is_file() {
            return Err(invalid("no such file".into()));
        }
        let source = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version = match schema::version(&source) {
            Ok(v) => v,
            Err(e) if is_corruption(&e) => return Err(invalid(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        if version > LATEST_SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: src.to_path_buf(),
                found: version,
                supported: LATEST_SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(invalid("it holds no Hearth data".into()));
        }
        let check: String = source
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| {
                if is_corruption(&e) {
                    invalid(e.to_string())
                } else {
                    e.into()
                }
            })?;
        if check != "ok" {
            return Err(invalid(check));
        }

        let mut streams = lock(&self.streams);
        let mut writer = self.lock_writer();
        run_backup(&source, &mut writer)?;
        streams.clear();
        // The copy brings the backup's header; keep this database in WAL mode.
        let mode: String = writer.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            let _: String =
                writer.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
        }
        schema::migrate_to(&mut writer, LATEST_SCHEMA_VERSION)?;
        Ok(())
    }
}
