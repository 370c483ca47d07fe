//! Settings: a key and one typed value (bool, integer, float or text).
//!
//! Keys are free-form strings chosen by the app (`chat.default_model`, `ui.theme`, ...). The
//! value keeps its type: reading a key with the wrong typed getter fails with
//! [`StoreError::SettingType`] instead of converting.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::error::{Result, StoreError};
use crate::store::Store;

/// A setting's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum SettingValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl SettingValue {
    /// The type's name, as stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            SettingValue::Bool(_) => "bool",
            SettingValue::Int(_) => "int",
            SettingValue::Float(_) => "float",
            SettingValue::Text(_) => "text",
        }
    }
}

/// A key with its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub key: String,
    pub value: SettingValue,
    pub updated_at: i64,
}

fn value_from_row(row: &Row<'_>) -> rusqlite::Result<SettingValue> {
    let kind: String = row.get("kind")?;
    Ok(match kind.as_str() {
        "bool" => SettingValue::Bool(row.get("bool_value")?),
        "int" => SettingValue::Int(row.get("int_value")?),
        "float" => SettingValue::Float(row.get("float_value")?),
        "text" => SettingValue::Text(row.get("text_value")?),
        other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown setting kind {other:?}").into(),
            ))
        }
    })
}

impl Store {
    /// Sets a key to a value (of any type, replacing the old value and type).
    pub fn set_setting(&self, key: &str, value: &SettingValue) -> Result<()> {
        let (b, i, f, t) = match value {
            SettingValue::Bool(v) => (Some(*v), None, None, None),
            SettingValue::Int(v) => (None, Some(*v), None, None),
            SettingValue::Float(v) => {
                if !v.is_finite() {
                    return Err(StoreError::InvalidValue(format!(
                        "setting {key}: {v} is not a finite number"
                    )));
                }
                (None, None, Some(*v), None)
            }
            SettingValue::Text(v) => (None, None, None, Some(v.as_str())),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (key, kind, bool_value, int_value, float_value, text_value, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, \
                 bool_value = excluded.bool_value, int_value = excluded.int_value, \
                 float_value = excluded.float_value, text_value = excluded.text_value, \
                 updated_at = excluded.updated_at",
                params![key, value.kind(), b, i, f, t, now_ms()],
            )?;
            Ok(())
        })
    }

    /// A key's value, `None` if unset.
    pub fn setting(&self, key: &str) -> Result<Option<SettingValue>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT kind, bool_value, int_value, float_value, text_value FROM settings \
                     WHERE key = ?1",
                    [key],
                    value_from_row,
                )
                .optional()?)
        })
    }

    /// Every setting, by key.
    pub fn settings(&self) -> Result<Vec<Setting>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key, kind, bool_value, int_value, float_value, text_value, updated_at \
                 FROM settings ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Setting {
                    key: r.get("key")?,
                    value: value_from_row(r)?,
                    updated_at: r.get("updated_at")?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Removes a key. Returns whether it existed.
    pub fn delete_setting(&self, key: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM settings WHERE key = ?1", [key])? > 0))
    }

    /// A boolean setting; `None` if unset, [`StoreError::SettingType`] if not a boolean.
    pub fn setting_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.setting(key)? {
            None => Ok(None),
            Some(SettingValue::Bool(v)) => Ok(Some(v)),
            Some(other) => Err(wrong_type(key, &other, "bool")),
        }
    }

    /// An integer setting; `None` if unset, [`StoreError::SettingType`] if not an integer.
    pub fn setting_int(&self, key: &str) -> Result<Option<i64>> {
        match self.setting(key)? {
            None => Ok(None),
            Some(SettingValue::Int(v)) => Ok(Some(v)),
            Some(other) => Err(wrong_type(key, &other, "int")),
        }
    }

    /// A float setting; `None` if unset, [`StoreError::SettingType`] if not a float.
    pub fn setting_float(&self, key: &str) -> Result<Option<f64>> {
        match self.setting(key)? {
            None => Ok(None),
            Some(SettingValue::Float(v)) => Ok(Some(v)),
            Some(other) => Err(wrong_type(key, &other, "float")),
        }
    }

    /// A text setting; `None` if unset, [`StoreError::SettingType`] if not text.
    pub fn setting_text(&self, key: &str) -> Result<Option<String>> {
        match self.setting(key)? {
            None => Ok(None),
            Some(SettingValue::Text(v)) => Ok(Some(v)),
            Some(other) => Err(wrong_type(key, &other, "text")),
        }
    }
}

fn wrong_type(key: &str, found: &SettingValue, wanted: &'static str) -> StoreError {
    StoreError::SettingType {
        key: key.to_string(),
        found: found.kind(),
        wanted,
    }
}
