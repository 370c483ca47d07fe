//! Getting a catalog model onto this machine at a chosen quantization: download the ready GGUF
//! file when the catalog names one, else download the safetensors weights and quantize them here.
//! The result is recorded in the installed-models registry.
//!
//! Installed ids are `CATALOG_ID-QUANT` in lowercase (`qwen2.5-1.5b-instruct-q4_k_m`).
//! Downloads stay in the Hugging Face cache (shared with other tools); quantized files go to the
//! models folder. Cancel and every download guarantee of [`crate::hub`] apply.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::catalog::{Acquisition, CatalogEntry};
use crate::convert::{quantize_folder, ConvertProgress};
use crate::hub::{DownloadProgress, Hub};
use crate::installed::{now_ms, sha256_file, InstallError, InstalledModel, InstalledModels};
use crate::quant::Quant;

/// Something happening during a pull.
#[derive(Debug)]
pub enum PullEvent<'a> {
    Download(&'a DownloadProgress),
    Quantize(&'a ConvertProgress),
}

/// The registry id of `entry` at `quant`.
pub fn installed_id(entry: &CatalogEntry, quant: Quant) -> String {
    format!("{}-{}", entry.id, quant.name().to_lowercase())
}

/// Files of a model repository that quantization needs.
fn is_source_file(name: &str) -> bool {
    !name.contains('/')
        && (name.ends_with(".safetensors")
            || matches!(
                name,
                "config.json"
                    | "generation_config.json"
                    | "tokenizer.json"
                    | "tokenizer_config.json"
                    | "tokenizer.model"
                    | "special_tokens_map.json"
                    | "added_tokens.json"
                    | "chat_template.jinja"
                    | "chat_template.json"
                    | "model.safetensors.index.json"
            ))
}

/// Downloads (and if needed quantizes) `entry` at `quant` and records it. A model already
/// installed under the same id is returned as it is.
pub fn pull(
    entry: &CatalogEntry,
    quant: Quant,
    hub: &Hub,
    models_dir: &Path,
    registry: &dyn InstalledModels,
    on_event: &mut dyn FnMut(PullEvent<'_>),
    cancel: &AtomicBool,
) -> Result<InstalledModel, InstallError> {
    let id = installed_id(entry, quant);
    if let Some(existing) = registry.get(&id)? {
        if Path::new(&existing.path).is_file() {
            return Ok(existing);
        }
    }
    let acquisition = entry
        .acquisition(quant)
        .ok_or_else(|| InstallError::Registry(format!("{} offers no {quant}", entry.id)))?;
    let model = match acquisition {
        Acquisition::Gguf {
            repo,
            revision,
            file,
        } => {
            let got = hub.download(
                &repo,
                &revision,
                &file,
                &mut |p| on_event(PullEvent::Download(p)),
                cancel,
            )?;
            let sha256 = match &got.sha256 {
                Some(s) => s.clone(),
                None => sha256_file(&got.path)?,
            };
            // The file's own header says what it is; a mislabelled file is recorded truthfully.
            let summary = crate::installed::inspect_gguf(&got.path)?;
            InstalledModel {
                id,
                path: got.path.to_string_lossy().into_owned(),
                source_repo: Some(repo),
                source_revision: Some(got.commit),
                source_file: Some(file),
                quant: summary.quant.or_else(|| Some(quant.name().to_string())),
                size_bytes: got.size,
                sha256,
                added_at: now_ms(),
                last_used_at: None,
            }
        }
        Acquisition::Quantize { repo, revision } => {
            let info = hub.repo_info(&repo, &revision)?;
            let files: Vec<&str> = info
                .siblings
                .iter()
                .map(|s| s.rfilename.as_str())
                .filter(|f| is_source_file(f))
                .collect();
            if !files.iter().any(|f| f.ends_with(".safetensors")) {
                return Err(InstallError::NoWeights { repo });
            }
            let mut folder = None;
            for f in &files {
                let got = hub.download_with_info(
                    &info,
                    &repo,
                    &revision,
                    f,
                    &mut |p| on_event(PullEvent::Download(p)),
                    cancel,
                )?;
                folder = got.path.parent().map(Path::to_path_buf);
            }
            let folder = folder.ok_or_else(|| InstallError::NoWeights { repo: repo.clone() })?;
            std::fs::create_dir_all(models_dir).map_err(|source| InstallError::Io {
                action: "cannot create",
                path: models_dir.to_path_buf(),
                source,
            })?;
            let dest = models_dir.join(format!("{id}.gguf"));
            let report = quantize_folder(
                &folder,
                &dest,
                quant,
                &mut |p| on_event(PullEvent::Quantize(p)),
                cancel,
            )?;
            InstalledModel {
                id,
                path: dest.to_string_lossy().into_owned(),
                source_repo: Some(repo),
                source_revision: Some(info.sha.clone()),
                source_file: None,
                quant: Some(quant.name().to_string()),
                size_bytes: report.output_bytes,
                sha256: sha256_file(&dest)?,
                added_at: now_ms(),
                last_used_at: None,
            }
        }
    };
    registry.put(&model)?;
    Ok(model)
}
