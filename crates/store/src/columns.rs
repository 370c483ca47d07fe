//! Conversions between Rust values and SQLite columns that rusqlite does not do the way we
//! want: unsigned counts (checked), 64-bit seeds (bit pattern), enums stored as TEXT.

use rusqlite::types::{FromSqlError, Type};
use rusqlite::Row;

use crate::error::{Result, StoreError};

/// Reads an optional non-negative integer column that must fit in `u32`.
pub(crate) fn opt_u32(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u32>> {
    let value: Option<i64> = row.get(column)?;
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    Type::Integer,
                    Box::new(FromSqlError::OutOfRange(v)),
                )
            })
        })
        .transpose()
}

/// Reads a non-null non-negative integer column that must fit in `u32`.
pub(crate) fn req_u32(row: &Row<'_>, column: &str) -> rusqlite::Result<u32> {
    opt_u32(row, column)?.ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Null,
            Box::new(FromSqlError::InvalidType),
        )
    })
}

/// Reads a non-negative integer column that must fit in `u64`.
pub(crate) fn opt_u64(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(column)?;
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    Type::Integer,
                    Box::new(FromSqlError::OutOfRange(v)),
                )
            })
        })
        .transpose()
}

/// A `u64` that must fit in SQLite's signed 64-bit integer.
pub(crate) fn u64_to_sql(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::InvalidValue(format!("{what} {value} is too large to store")))
}

/// An enum stored as TEXT: its name in the database and back.
pub(crate) trait TextEnum: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
}

/// Reads a TEXT column holding a [`TextEnum`].
pub(crate) fn get_enum<T: TextEnum>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    T::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Text,
            format!("unknown value {text:?} in column {column}").into(),
        )
    })
}

/// Implements `TextEnum`, `ToSql` and `Display` for a fieldless enum.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $crate::columns::TextEnum for $name {
            const ALL: &'static [Self] = &[$($name::$variant),*];
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl $name {
            /// The name stored in the database and used in exports.
            pub fn as_str(self) -> &'static str {
                $crate::columns::TextEnum::as_str(self)
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;
