//! Opening the database and the [`Store`] handle every other module hangs its methods on.
//!
//! # Threading contract
//! [`Store`] is `Send + Sync`; share it as `Arc<Store>`. It owns two SQLite connections:
//! - the *writer*, behind a mutex: every write goes through it, one transaction at a time (one
//!   writer path, so writers never fight over SQLite's lock inside the process);
//! - the *reader*, behind its own mutex, in `query_only` mode: reads (listing, search, export,
//!   backup) run there and, thanks to WAL, never wait for a write in progress.
//!
//! Every method is blocking (a few milliseconds for ordinary calls; a search over a large
//! database or a backup can take longer). Call it from a plain thread or `spawn_blocking`,
//! not from an async task. Lock order inside the crate: streams, then writer; the reader lock
//! is never held while taking another.
//!
//! # Durability
//! WAL mode with `synchronous = NORMAL`: a transaction that returned is in the WAL file and
//! survives the process being killed; a power cut may lose the last transactions, never the
//! database's consistency. Streaming messages are written at most about once a second (see
//! [`Store::append_streaming`]), so a crash loses at most that much of an answer.
//!
//! # Bad states on open
//! - schema newer than this build: [`StoreError::NewerSchema`], file untouched;
//! - damaged file, or not a database at all: moved aside to `<name>.corrupt-<UTC stamp>` (with
//!   its `-wal`/`-shm` companions), a fresh database is created, and [`Opened::recovery`] says so;
//! - full disk: [`StoreError::DiskFull`] from the write that hit it, rolled back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::clock::{compact_utc, now_ms};
use crate::error::{is_corruption, Result, StoreError};
use crate::ids::MessageId;
use crate::schema::{self, LATEST_SCHEMA_VERSION};
use crate::streaming::PendingStream;

/// How much checking [`Store::open`] does before trusting an existing file. Whatever the
/// choice, a file that is not a database is always detected, and damage met later makes
/// the operation fail with [`StoreError::Corrupt`] ([`Store::verify`] runs the full check on
/// demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum OpenCheck {
    /// `Quick` for files up to [`AUTO_QUICK_CHECK_MAX_BYTES`], `Schema` above (the quick
    /// check reads the whole file: about 2 s for a 180 MiB database of 100,000 messages on
    /// the development machine). The default.
    Auto,
    /// `PRAGMA quick_check`: every page and b-tree structure, not index contents.
    Quick,
    /// `PRAGMA integrity_check`: also cross-checks every index.
    Full,
    /// Only the header and the schema are read.
    Schema,
}

/// Largest database (with its WAL) that [`OpenCheck::Auto`] quick-checks at open.
pub const AUTO_QUICK_CHECK_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long a streaming message's text may wait in memory before it is written
    /// (default: one second). See [`Store::append_streaming`].
    pub streaming_flush_interval: Duration,
    /// How long to wait for another process's lock before failing with [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// Check done on an existing file at open.
    pub check: OpenCheck,
    /// Upper bound on the database size in bytes (rounded down to whole pages). Writes past it
    /// fail with [`StoreError::DiskFull`]. `None`: only the disk limits it.
    pub max_database_bytes: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            streaming_flush_interval: Duration::from_secs(1),
            busy_timeout: Duration::from_secs(5),
            check: OpenCheck::Auto,
            max_database_bytes: None,
        }
    }
}

/// A damaged database was set aside and replaced by an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryNotice {
    /// Where the database should have been.
    pub path: PathBuf,
    /// Where the damaged file is now (never deleted).
    pub moved_to: PathBuf,
    /// What SQLite said about the file.
    pub reason: String,
}

impl RecoveryNotice {
    /// A sentence for the user.
    pub fn message(&self) -> String {
        format!(
            "Hearth's database was damaged and could not be opened, so a new empty one was \
             started. The damaged file was kept at {} ({}).",
            self.moved_to.display(),
            self.reason
        )
    }
}

/// What [`Store::open`] returns: the store, and what happened on the way.
#[derive(Debug)]
#[must_use = "a recovery notice must be shown to the user"]
pub struct Opened {
    pub store: Store,
    /// Set when the previous file was damaged and moved aside; show it to the user.
    pub recovery: Option<RecoveryNotice>,
    /// Schema version the file had before opening (0: the database was created now).
    pub previous_version: u32,
}

/// Handle to one Hearth database. See the module documentation for the contract.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    pub(crate) streams: Mutex<HashMap<MessageId, PendingStream>>,
    pub(crate) flush_interval: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Locks a mutex, ignoring poisoning: a panic mid-transaction rolls the transaction back when
/// it unwinds, so the connection is still in a clean state.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why an existing file cannot be used as is.
enum Probe {
    Usable,
    Corrupt(String),
}

impl Store {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Opened> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the database in the data folder: `data_dir` if given (the app's setting), else
    /// `HEARTH_DATA_DIR`, else the OS per-user data folder.
    pub fn open_in_data_dir(data_dir: Option<&Path>, options: &OpenOptions) -> Result<Opened> {
        Self::open_with(crate::location::database_path(data_dir)?, options)
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Opened> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::io("cannot create the data folder", dir, e))?;
        }

        let mut recovery = None;
        let exists = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if exists {
            match probe(&path, options)? {
                Probe::Usable => {}
                Probe::Corrupt(reason) => {
                    let moved_to = move_aside(&path)?;
                    recovery = Some(RecoveryNotice {
                        path: path.clone(),
                        moved_to,
                        reason,
                    });
                }
            }
        }

        let mut writer = open_connection(&path, options)?;
        writer.pragma_update(None, "foreign_keys", true)?;
        let mode: String = writer.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            let mode: String =
                writer.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::InvalidValue(format!(
                    "the database could not be switched to WAL mode (it is in {mode} mode)"
                )));
            }
        }
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        if let Some(bytes) = options.max_database_bytes {
            let page_size: i64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (bytes / page_size.max(512) as u64).max(1);
            let pages = i64::try_from(pages).unwrap_or(i64::MAX);
            writer.pragma_update(None, "max_page_count", pages)?;
        }

        let found = schema::version(&writer)?;
        if found > LATEST_SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found,
                supported: LATEST_SCHEMA_VERSION,
            });
        }
        let previous_version = schema::migrate_to(&mut writer, LATEST_SCHEMA_VERSION)?;

        let reader = open_connection(&path, options)?;
        reader.pragma_update(None, "query_only", true)?;

        Ok(Opened {
            store: Store {
                path,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                streams: Mutex::new(HashMap::new()),
                flush_interval: options.streaming_flush_interval,
            },
            recovery,
            previous_version,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (always [`LATEST_SCHEMA_VERSION`] after open,
    /// unless a newer build migrated it since).
    pub fn schema_version(&self) -> Result<u32> {
        self.read(|conn| Ok(schema::version(conn)?))
    }

    /// Runs SQLite's full `integrity_check` and the full-text indexes' own checks. Returns the
    /// problems found; empty means the database is sound.
    pub fn verify(&self) -> Result<Vec<String>> {
        let mut problems = self.read(|conn| {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                let line = row?;
                if line != "ok" {
                    out.push(line);
                }
            }
            Ok(out)
        })?;
        // The FTS5 check is spelled as an INSERT, so it runs on the writer (it writes nothing).
        let writer = lock(&self.writer);
        for table in ["messages_fts", "chunks_fts"] {
            let sql = format!("INSERT INTO {table}({table}) VALUES ('integrity-check')");
            if let Err(e) = writer.execute(&sql, []) {
                problems.push(format!("{table}: {e}"));
            }
        }
        Ok(problems)
    }

    /// Runs `f` in an IMMEDIATE transaction on the writer and commits. On any error the
    /// transaction is rolled back and nothing of it is kept.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        Self::write_locked(&mut conn, f)
    }

    pub(crate) fn write_locked<T>(
        conn: &mut Connection,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// Runs `f` on the reader inside one read transaction (a consistent snapshot).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.finish()?;
        Ok(value)
    }

    pub(crate) fn lock_reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.reader)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Write out streaming text still waiting in memory; errors have nowhere to go here.
        let _ = self.flush_streaming();
    }
}

/// Opens a read-write connection with the per-connection settings.
fn open_connection(path: &Path, options: &OpenOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(options.busy_timeout)?;
    Ok(conn)
}

/// Looks at an existing file without changing it: refuses a newer schema, reports damage.
fn probe(path: &Path, options: &OpenOptions) -> Result<Probe> {
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(e) if is_corruption(&e) => return Ok(Probe::Corrupt(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    conn.busy_timeout(options.busy_timeout)?;
    let found = match schema::version(&conn) {
        Ok(v) => v,
        Err(e) if is_corruption(&e) => return Ok(Probe::Corrupt(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if found > LATEST_SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: LATEST_SCHEMA_VERSION,
        });
    }
    let check = match options.check {
        OpenCheck::Auto => {
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            if size(path) + size(Path::new(&wal)) <= AUTO_QUICK_CHECK_MAX_BYTES {
                OpenCheck::Quick
            } else {
                OpenCheck::Schema
            }
        }
        other => other,
    };
    let pragma = match check {
        OpenCheck::Quick => "PRAGMA quick_check(20)",
        OpenCheck::Full => "PRAGMA integrity_check(20)",
        _ => "SELECT CASE WHEN count(*) >= 0 THEN 'ok' END FROM sqlite_master",
    };
    let lines = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(pragma)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match lines {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(Probe::Usable),
        Ok(lines) => Ok(Probe::Corrupt(lines.join("; "))),
        Err(e) if is_corruption(&e) => Ok(Probe::Corrupt(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Renames a damaged database (and its `-wal`/`-shm` files) to `<name>.corrupt-<stamp>`,
/// adding `-2`, `-3`, ... if that name is taken. Returns the new path of the main file.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let stamp = compact_utc(now_ms());
    let base = path.as_os_str().to_owned();
    let mut n = 1;
    let target = loop {
        let mut candidate = base.clone();
        candidate.push(format!(".corrupt-{stamp}"));
        if n > 1 {
            candidate.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(candidate);
        let taken = ["", "-wal", "-shm"].iter().any(|suffix| {
            let mut p = candidate.as_os_str().to_owned();
            p.push(suffix);
            Path::new(&p).exists()
        });
        if !taken {
            break candidate;
        }
        n += 1;
    };
    std::fs::rename(path, &target)
        .map_err(|e| StoreError::io("cannot move the damaged database aside from", path, e))?;
    for suffix in ["-wal", "-shm"] {
        let mut from = base.clone();
        from.push(suffix);
        let from = PathBuf::from(from);
        if from.exists() {
            let mut to = target.as_os_str().to_owned();
            to.push(suffix);
            std::fs::rename(&from, PathBuf::from(to))
                .map_err(|e| StoreError::io("cannot move aside", &from, e))?;
        }
    }
    Ok(target)
}
