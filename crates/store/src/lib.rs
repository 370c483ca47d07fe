//! Hearth's SQLite database.
