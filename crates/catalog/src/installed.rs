//! Installed models: the registry of model files on this machine (kept by `hearth-store`), and
//! the ways a model gets there besides [`crate::pull`]: importing a GGUF file or a Hugging Face
//! folder from anywhere on disk, and removing one.
//!
//! Ownership rule for removal, which needs no extra bookkeeping: a file inside the models folder
//! (a copy, a quantized file, or the link an import made) is deleted; a file in the Hugging Face
//! cache is removed from the cache (its blob only when no other snapshot uses it); a file anywhere
//! else is only forgotten, never deleted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::quantized::gguf_file::{Content, Value};
use sha2::{Digest, Sha256};

pub use hearth_store::models::InstalledModel;

use crate::catalog::KNOWN_ARCHITECTURES;
use crate::convert::{quantize_folder, ConvertError, ConvertProgress};
use crate::hub::{CacheLayout, HubError};
use crate::quant::Quant;

/// What can go wrong installing or removing a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("the model registry failed: {0}")]
    Registry(String),
    #[error("{path} is not a GGUF model: {reason}")]
    NotGguf { path: PathBuf, reason: String },
    #[error("{path} is a `{arch}` model, which the engine cannot run (it runs {})", KNOWN_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error(
        "a model with the id `{0}` is already installed; remove it first or choose another id"
    )]
    AlreadyInstalled(String),
    #[error("no installed model has the id `{0}`")]
    NotInstalled(String),
    #[error("{repo} has no safetensors weights to quantize")]
    NoWeights { repo: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<hearth_store::StoreError> for InstallError {
    fn from(e: hearth_store::StoreError) -> Self {
        InstallError::Registry(e.to_string())
    }
}

/// The registry of installed models. `hearth_store::Store` implements it; tests and tools may
/// use another implementation.
pub trait InstalledModels {
    fn list(&self) -> Result<Vec<InstalledModel>, InstallError>;
    fn get(&self, id: &str) -> Result<Option<InstalledModel>, InstallError>;
    /// Inserts or replaces the record with the same id.
    fn put(&self, model: &InstalledModel) -> Result<(), InstallError>;
    /// Forgets a record (files are handled by [`remove`]).
    fn forget(&self, id: &str) -> Result<(), InstallError>;
    /// Records the decode speed measured with this model (tokens per second).
    fn record_speed(&self, id: &str, tokens_per_second: f64) -> Result<(), InstallError>;
    fn measured_speed(&self, id: &str) -> Result<Option<f64>, InstallError>;
}

fn speed_key(id: &str) -> String {
    format!("models.measured_decode_tok_s.{id}")
}

impl InstalledModels for hearth_store::Store {
    fn list(&self) -> Result<Vec<InstalledModel>, InstallError> {
        Ok(self.list_models()?)
    }

    fn get(&self, id: &str) -> Result<Option<InstalledModel>, InstallError> {
        Ok(self.list_models()?.into_iter().find(|m| m.id == id))
    }

    fn put(&self, model: &InstalledModel) -> Result<(), InstallError> {
        Ok(self.upsert_model(model)?)
    }

    fn forget(&self, id: &str) -> Result<(), InstallError> {
        self.remove_model(id)?;
        self.delete_setting(&speed_key(id))?;
        Ok(())
    }

    fn record_speed(&self, id: &str, tokens_per_second: f64) -> Result<(), InstallError> {
        Ok(self.set_setting(
            &speed_key(id),
            &hearth_store::settings::SettingValue::Float(tokens_per_second),
        )?)
    }

    fn measured_speed(&self, id: &str) -> Result<Option<f64>, InstallError> {
        Ok(self.setting_float(&speed_key(id))?)
    }
}

/// How an imported GGUF file is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// Copy the file into the models folder (the original may then be deleted).
    Copy,
    /// Put a symbolic link in the models folder (no space used; the original must stay).
    Link,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, InstallError> {
    let mut f = std::fs::File::open(path).map_err(io("cannot read", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io("cannot read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What a GGUF file says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufSummary {
    pub architecture: String,
    pub name: Option<String>,
    /// `general.file_type` as a name (`Q4_K_M`), when it is one Hearth knows.
    pub quant: Option<String>,
}

/// Reads and checks a GGUF header: a file the engine can run.
pub fn inspect_gguf(path: &Path) -> Result<GgufSummary, InstallError> {
    let mut f = std::fs::File::open(path).map_err(io("cannot open", path))?;
    let c = Content::read(&mut f).map_err(|e| InstallError::NotGguf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let s = |k: &str| match c.metadata.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let arch = s("general.architecture").ok_or_else(|| InstallError::NotGguf {
        path: path.to_path_buf(),
        reason: "no general.architecture".into(),
    })?;
    if !KNOWN_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(InstallError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            arch,
        });
    }
    let quant = match c.metadata.get("general.file_type") {
        Some(Value::U32(t)) => Quant::ALL
            .into_iter()
            .find(|q| q.file_type() == *t)
            .map(|q| q.name().to_string())
            .or(match t {
                0 => Some("F32".into()),
                2 => Some("Q4_0".into()),
                3 => Some("Q4_1".into()),
                8 => Some("Q5_0".into()),
                9 => Some("Q5_1".into()),
                14 => Some("Q4_K_S".into()),
                16 => Some("Q5_K_S".into()),
                _ => None,
            }),
        _ => None,
    };
    Ok(GgufSummary {
        architecture: arch,
        name: s("general.name"),
        quant,
    })
}

/// An id made from a file or folder name: lowercased, `.gguf` dropped, other characters than
/// letters, digits, `.`, `-` and `_` replaced by `-`.
pub fn id_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gguf").unwrap_or(&name);
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
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

fn check_free(registry: &dyn InstalledModels, id: &str) -> Result<(), InstallError> {
    if registry.get(id)?.is_some() {
        return Err(InstallError::AlreadyInstalled(id.to_string()));
    }
    Ok(())
}

/// Imports a GGUF file from anywhere on disk into `models_dir` (copied or linked).
pub fn import_gguf(
    source: &Path,
    models_dir: &Path,
    mode: ImportMode,
    id: Option<&str>,
    registry: &dyn InstalledModels,
) -> Result<InstalledModel, InstallError> {
    let summary = inspect_gguf(source)?;
    let id = id
        .map(str::to_string)
        .unwrap_or_else(|| id_from_path(source));
    check_free(registry, &id)?;
    std::fs::create_dir_all(models_dir).map_err(io("cannot create", models_dir))?;
    let dest = models_dir.join(format!("{id}.gguf"));
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Err(InstallError::AlreadyInstalled(id));
    }
    let sha256 = sha256_file(source)?;
    match mode {
        ImportMode::Copy => {
            let tmp = dest.with_extension("gguf.partial");
            std::fs::copy(source, &tmp).map_err(io("cannot copy to", &tmp))?;
            std::fs::rename(&tmp, &dest).map_err(io("cannot move into place", &dest))?;
        }
        ImportMode::Link => {
            let target = std::fs::canonicalize(source).map_err(io("cannot resolve", source))?;
            link(&target, &dest).map_err(io("cannot link", &dest))?;
        }
    }
    let size_bytes = std::fs::metadata(&dest)
        .map_err(io("cannot read", &dest))?
        .len();
    let model = InstalledModel {
        id,
        path: dest.to_string_lossy().into_owned(),
        source_repo: None,
        source_revision: None,
        source_file: Some(source.to_string_lossy().into_owned()),
        quant: summary.quant,
        size_bytes,
        sha256,
        added_at: now_ms(),
        last_used_at: None,
    };
    registry.put(&model)?;
    Ok(model)
}

/// Imports a Hugging Face model folder by quantizing it into `models_dir` (the engine runs GGUF,
/// so the folder itself is neither copied nor linked; it may be deleted afterwards).
pub fn import_folder(
    folder: &Path,
    models_dir: &Path,
    quant: Quant,
    id: Option<&str>,
    registry: &dyn InstalledModels,
    progress: &mut dyn FnMut(&ConvertProgress),
    cancel: &AtomicBool,
) -> Result<InstalledModel, InstallError> {
    let suffix = quant.name().to_lowercase();
    let id = match id {
        Some(id) => id.to_string(),
        None => format!(
            "{}-{suffix}",
            id_from_path(&std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf()))
        ),
    };
    check_free(registry, &id)?;
    std::fs::create_dir_all(models_dir).map_err(io("cannot create", models_dir))?;
    let dest = models_dir.join(format!("{id}.gguf"));
    quantize_folder(folder, &dest, quant, progress, cancel)?;
    let model = InstalledModel {
        id,
        path: dest.to_string_lossy().into_owned(),
        source_repo: None,
        source_revision: None,
        source_file: Some(folder.to_string_lossy().into_owned()),
        quant: Some(quant.name().to_string()),
        size_bytes: std::fs::metadata(&dest)
            .map_err(io("cannot read", &dest))?
            .len(),
        sha256: sha256_file(&dest)?,
        added_at: now_ms(),
        last_used_at: None,
    };
    registry.put(&model)?;
    Ok(model)
}

/// Removes an installed model: its files as the module documentation says, then its record.
pub fn remove(
    id: &str,
    registry: &dyn InstalledModels,
    models_dir: &Path,
    hf_cache: &CacheLayout,
) -> Result<InstalledModel, InstallError> {
    let model = registry
        .get(id)?
        .ok_or_else(|| InstallError::NotInstalled(id.to_string()))?;
    let path = PathBuf::from(&model.path);
    let inside = |root: &Path| {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        // The link itself, not its target: canonicalize the parent only.
        let parent = path.parent().and_then(|p| std::fs::canonicalize(p).ok());
        parent.is_some_and(|p| p.starts_with(&root))
    };
    if inside(models_dir) {
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).map_err(io("cannot delete", &path))?;
        }
    } else if inside(hf_cache.root()) {
        if let (Some(repo), Some(commit), Some(file)) = (
            &model.source_repo,
            &model.source_revision,
            &model.source_file,
        ) {
            hf_cache.remove(repo, commit, file)?;
        }
    }
    registry.forget(id)?;
    Ok(model)
}

#[cfg(unix)]
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link).or_else(|_| std::fs::hard_link(target, link))
}

#[cfg(not(any(unix, windows)))]
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::hard_link(target, link)
}
