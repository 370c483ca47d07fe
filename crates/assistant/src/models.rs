//! Installed models: a GGUF file is checked (header, architecture, hyper-parameters), hashed and
//! recorded in the store. The file stays where it is (the record links to it).

use std::io::Read;
use std::path::{Path, PathBuf};

use hearth_engine::gguf::ModelFile;
use hearth_store::{InstalledModel as StoredModel, SettingValue, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AppError, Result};

pub(crate) const DEFAULT_KEY: &str = "models.default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledModel {
    pub id: String,
    pub name: String,
    pub path: String,
    pub arch: Option<String>,
    pub quant: Option<String>,
    pub size_bytes: u64,
    pub context_length: Option<u32>,
    pub is_default: bool,
    /// False when the file is no longer where it was recorded.
    pub available: bool,
}

fn describe(m: &StoredModel, default: Option<&str>) -> InstalledModel {
    let path = PathBuf::from(&m.path);
    let file = ModelFile::open(&path).ok();
    let cfg = file.as_ref().and_then(|f| f.config().ok());
    let name = file
        .as_ref()
        .and_then(|f| f.get_str("general.name").map(str::to_string))
        .unwrap_or_else(|| m.id.clone());
    InstalledModel {
        id: m.id.clone(),
        name,
        path: m.path.clone(),
        arch: cfg.as_ref().map(|c| c.arch.name().to_string()),
        quant: m.quant.clone(),
        size_bytes: m.size_bytes,
        context_length: cfg.map(|c| c.context_len as u32),
        is_default: default == Some(m.id.as_str()),
        available: path.is_file(),
    }
}

pub fn default_model_id(store: &Store) -> Result<Option<String>> {
    if let Some(id) = store.setting_text(DEFAULT_KEY)? {
        if store.model(&id).is_ok() {
            return Ok(Some(id));
        }
    }
    Ok(store.list_models()?.first().map(|m| m.id.clone()))
}

pub fn list(store: &Store) -> Result<Vec<InstalledModel>> {
    let default = default_model_id(store)?;
    Ok(store
        .list_models()?
        .iter()
        .map(|m| describe(m, default.as_deref()))
        .collect())
}

pub fn set_default(store: &Store, id: &str) -> Result<()> {
    store.model(id)?;
    store.set_setting(DEFAULT_KEY, &SettingValue::Text(id.to_string()))?;
    Ok(())
}

pub fn remove(store: &Store, id: &str) -> Result<()> {
    store.remove_model(id)?;
    if store.setting_text(DEFAULT_KEY)?.as_deref() == Some(id) {
        store.delete_setting(DEFAULT_KEY)?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let io = |e: std::io::Error| {
        AppError::new("models.io", format!("Cannot read {}: {e}", path.display()))
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// A store id from a file name: lowercase letters, digits, '-', '.', '_'.
fn id_from_path(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() {
        "model".into()
    } else {
        id
    }
}

/// Checks a GGUF file and records it. Importing the same file again returns its record.
pub fn import(store: &Store, path: &Path, now_ms: i64) -> Result<InstalledModel> {
    let path = path.canonicalize().map_err(|e| {
        AppError::new(
            "models.not_found",
            format!("No model file at {}: {e}", path.display()),
        )
    })?;
    let file = ModelFile::open(&path)?;
    file.config()?;
    let quant = file.quant_label();
    let size = file.file_size;
    drop(file);
    let sha = sha256_file(&path)?;
    let path_text = path.display().to_string();
    if let Some(existing) = store
        .list_models()?
        .into_iter()
        .find(|m| m.path == path_text && m.sha256 == sha)
    {
        let default = default_model_id(store)?;
        return Ok(describe(&existing, default.as_deref()));
    }
    let base = id_from_path(&path);
    let mut id = base.clone();
    let mut n = 2;
    while store.model(&id).is_ok() {
        id = format!("{base}-{n}");
        n += 1;
    }
    let first = store.list_models()?.is_empty();
    store.upsert_model(&StoredModel {
        id: id.clone(),
        path: path_text,
        source_repo: None,
        source_revision: None,
        source_file: None,
        quant: Some(quant),
        size_bytes: size,
        sha256: sha,
        added_at: now_ms,
        last_used_at: None,
    })?;
    if first {
        set_default(store, &id)?;
    }
    let default = default_model_id(store)?;
    Ok(describe(&store.model(&id)?, default.as_deref()))
}
