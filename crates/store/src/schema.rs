//! Schema migrations.
//!
//! The schema is the ordered list of files in `crates/store/migrations/`, embedded at build
//! time. A database's schema version is its `PRAGMA user_version`: the number of migrations
//! applied. Opening applies the missing ones in order, each in its own transaction together with
//! the version bump, so a crash leaves the database at a whole version. A database whose version
//! is above [`LATEST_SCHEMA_VERSION`] is never modified (see [`crate::StoreError::NewerSchema`]).

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// One migration file.
pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// All migrations, in order. Version `n` is at index `n - 1`.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial.sql",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_chunk_embeddings.sql",
        sql: include_str!("../migrations/0002_chunk_embeddings.sql"),
    },
];

/// The schema version this build creates and understands.
pub const LATEST_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // A negative or huge version is not one we wrote: treat it as "newer than us".
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Applies migrations until the database is at `target` (at most the latest). Returns the
/// version the database had before.
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32> {
    let before = version(conn)?;
    let target = target.min(LATEST_SCHEMA_VERSION);
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > before && m.version <= target)
    {
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have migrated in the meantime.
            if version(&tx)? >= migration.version {
                return Ok(());
            }
            tx.execute_batch(migration.sql)?;
            tx.pragma_update(None, "user_version", migration.version)?;
            tx.commit()
        };
        apply(conn).map_err(|source| match StoreError::from(source) {
            StoreError::Database(source) => StoreError::Migration {
                version: migration.version,
                name: migration.name,
                source,
            },
            other => other,
        })?;
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in migrations/ is embedded, in order, with consecutive numbers.
    #[test]
    fn embedded_list_matches_the_migrations_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(
            files, embedded,
            "add every migrations/*.sql file to MIGRATIONS"
        );
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
            let on_disk = std::fs::read_to_string(dir.join(m.name)).unwrap();
            assert_eq!(on_disk, m.sql);
        }
    }

    #[test]
    fn migrating_step_by_step_reaches_each_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        for v in 0..=LATEST_SCHEMA_VERSION {
            migrate_to(&mut conn, v).unwrap();
            assert_eq!(version(&conn).unwrap(), v);
        }
        // Applying again is a no-op.
        assert_eq!(
            migrate_to(&mut conn, LATEST_SCHEMA_VERSION).unwrap(),
            LATEST_SCHEMA_VERSION
        );
    }
}
