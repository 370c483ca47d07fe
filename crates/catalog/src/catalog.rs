//! The curated model catalog: one TOML file per model in the repository's `models/` folder,
//! compiled into the binary ([`Catalog::builtin`]) and loadable from any folder
//! ([`Catalog::load_dir`]).
//!
//! Every entry is validated when it is loaded: a catalog that loads is one whose ids are unique,
//! whose architectures the engine runs, whose repositories are well-formed Hugging Face ids and
//! whose recommended quantization can actually be obtained (a ready GGUF file or safetensors to
//! quantize). Callers may rely on those facts without checking again.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::quant::Quant;

/// Architectures (GGUF `general.architecture`) that the engine runs.
pub const KNOWN_ARCHITECTURES: [&str; 5] = ["llama", "qwen2", "qwen3", "gemma3", "phi3"];

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Stable identifier used on the command line and in the store (`qwen2.5-1.5b-instruct`).
    pub id: String,
    /// Name shown to people.
    pub name: String,
    /// Model family (`qwen2.5`, `llama3.2`, ...), for grouping.
    pub family: String,
    /// GGUF architecture name; one of [`KNOWN_ARCHITECTURES`].
    pub architecture: String,
    /// Total parameter count, embeddings included.
    pub parameters: u64,
    /// Longest context the model was trained for, in tokens.
    pub context_length: u32,
    /// SPDX id or the licence's name.
    pub license: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_url: Option<String>,
    /// ISO 639-1 codes of the languages the model handles well (translation offers these).
    pub languages: Vec<String>,
    /// What it is good at, in a few words each.
    pub strengths: Vec<String>,
    pub description: String,
    /// The quantization to offer first.
    pub recommended_quant: Quant,
    /// Sizes the hardware fit needs (key/value cache, bytes read per token).
    pub shape: Shape,
    /// Safetensors weights to quantize on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SafetensorsSource>,
    /// Ready GGUF files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufSource>,
}

/// The transformer's dimensions, as in its `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub vocab: u32,
    /// The output projection shares the token embedding matrix.
    pub tied_embeddings: bool,
}

/// A Hugging Face repository of safetensors weights with `config.json` and `tokenizer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetensorsSource {
    pub repo: String,
    /// A branch name or a 40-hex commit.
    pub revision: String,
    /// The repository asks people to accept terms before downloading: a token is needed.
    #[serde(default)]
    pub gated: bool,
}

/// A Hugging Face repository of ready GGUF files, one per quantization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufSource {
    pub repo: String,
    pub revision: String,
    #[serde(default)]
    pub gated: bool,
    /// File name in the repository for each quantization it offers.
    pub files: BTreeMap<Quant, String>,
}

/// How a quantization of an entry is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// Download this ready GGUF file.
    Gguf {
        repo: String,
        revision: String,
        file: String,
    },
    /// Download the safetensors weights and quantize them here.
    Quantize { repo: String, revision: String },
}

impl CatalogEntry {
    /// Quantizations that can be had for this entry, ready or by quantizing locally.
    pub fn available_quants(&self) -> Vec<Quant> {
        Quant::ALL
            .into_iter()
            .filter(|q| self.acquisition(*q).is_some())
            .collect()
    }

    /// Where `quant` comes from: a ready file if there is one, else local quantization.
    pub fn acquisition(&self, quant: Quant) -> Option<Acquisition> {
        if let Some(g) = &self.gguf {
            if let Some(file) = g.files.get(&quant) {
                return Some(Acquisition::Gguf {
                    repo: g.repo.clone(),
                    revision: g.revision.clone(),
                    file: file.clone(),
                });
            }
        }
        self.source.as_ref().map(|s| Acquisition::Quantize {
            repo: s.repo.clone(),
            revision: s.revision.clone(),
        })
    }

    /// Estimated size in bytes of the GGUF file at `quant`.
    pub fn estimated_file_bytes(&self, quant: Quant) -> u64 {
        (self.parameters as f64 * quant.bits_per_weight() / 8.0) as u64
    }

    /// Bytes of key/value cache per token of context (the engine keeps it in f16).
    pub fn kv_bytes_per_token(&self) -> u64 {
        let s = &self.shape;
        2 * s.layers as u64 * s.kv_heads as u64 * s.head_dim as u64 * 2
    }

    /// Parameters of the token embedding matrix.
    pub fn embedding_parameters(&self) -> u64 {
        self.shape.vocab as u64 * self.shape.hidden as u64
    }

    /// Whether the model is said to handle `language` (an ISO 639-1 code) well.
    pub fn supports_language(&self, language: &str) -> bool {
        self.languages
            .iter()
            .any(|l| l.eq_ignore_ascii_case(language))
    }
}

/// A problem found in one catalog file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("cannot read the catalog at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a valid catalog entry: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("the model id `{id}` is used by both {first} and {second}")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
    #[error("no model `{0}` in the catalog")]
    UnknownModel(String),
}

/// The set of catalog entries, sorted by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_catalog.rs"));
}

impl Catalog {
    /// The catalog compiled into this build from the repository's `models/` folder.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_sources(
            builtin::FILES
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string())),
        )
    }

    /// Loads every `*.toml` file of a folder.
    pub fn load_dir(dir: &Path) -> Result<Self, CatalogError> {
        let io = |source| CatalogError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io)? {
            let path = item.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
        Self::from_sources(files)
    }

    /// Parses and validates `(file name, TOML text)` pairs.
    pub fn from_sources(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, CatalogError> {
        let mut entries: Vec<(String, CatalogEntry)> = Vec::new();
        for (file, text) in files {
            let entry: CatalogEntry = toml::from_str(&text).map_err(|e| CatalogError::Parse {
                file: file.clone(),
                message: e.to_string(),
            })?;
            validate(&entry).map_err(|message| CatalogError::Invalid {
                file: file.clone(),
                message,
            })?;
            if let Some((first, _)) = entries.iter().find(|(_, e)| e.id == entry.id) {
                return Err(CatalogError::DuplicateId {
                    id: entry.id.clone(),
                    first: first.clone(),
                    second: file,
                });
            }
            entries.push((file, entry));
        }
        let mut entries: Vec<CatalogEntry> = entries.into_iter().map(|(_, e)| e).collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Like [`Catalog::get`], with an error that names the id.
    pub fn require(&self, id: &str) -> Result<&CatalogEntry, CatalogError> {
        self.get(id)
            .ok_or_else(|| CatalogError::UnknownModel(id.to_string()))
    }

    /// Entries that handle `language` well, for the translation view.
    pub fn for_language<'a>(
        &'a self,
        language: &'a str,
    ) -> impl Iterator<Item = &'a CatalogEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.supports_language(language))
    }
}

fn is_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if ok_part(a) && ok_part(b))
}

fn is_revision(s: &str) -> bool {
    let commit = s.len() == 40
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    let branch = !s.is_empty()
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    commit || branch
}

/// Checks one entry; the message says what is wrong.
pub fn validate(e: &CatalogEntry) -> Result<(), String> {
    let id_ok = !e.id.is_empty()
        && e.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && e.id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !id_ok {
        return Err(format!(
            "id `{}` must be lowercase letters, digits, `-` and `.`",
            e.id
        ));
    }
    for (field, value) in [
        ("name", &e.name),
        ("family", &e.family),
        ("license", &e.license),
        ("description", &e.description),
    ] {
        if value.trim().is_empty() {
            return Err(format!("`{field}` is empty"));
        }
    }
    if !KNOWN_ARCHITECTURES.contains(&e.architecture.as_str()) {
        return Err(format!(
            "architecture `{}` is not one the engine runs ({})",
            e.architecture,
            KNOWN_ARCHITECTURES.join(", ")
        ));
    }
    if e.parameters < 10_000_000 || e.parameters > 100_000_000_000 {
        return Err(format!("parameters {} is implausible", e.parameters));
    }
    if e.context_length < 512 {
        return Err(format!("context_length {} is too small", e.context_length));
    }
    if e.languages.is_empty() {
        return Err("`languages` is empty".into());
    }
    for l in &e.languages {
        if !(l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase())) {
            return Err(format!("language `{l}` is not an ISO 639-1 code"));
        }
    }
    if e.strengths.is_empty() {
        return Err("`strengths` is empty".into());
    }
    let s = &e.shape;
    if s.layers == 0
        || s.hidden == 0
        || s.heads == 0
        || s.kv_heads == 0
        || s.head_dim == 0
        || s.vocab == 0
    {
        return Err("a `shape` dimension is zero".into());
    }
    if s.heads % s.kv_heads != 0 {
        return Err(format!(
            "{} heads cannot be grouped over {} key/value heads",
            s.heads, s.kv_heads
        ));
    }
    // Parameters must at least hold the embeddings and the attention projections.
    let floor = s.vocab as u64 * s.hidden as u64
        + s.layers as u64 * s.hidden as u64 * s.head_dim as u64 * s.heads as u64;
    if e.parameters < floor {
        return Err(format!(
            "parameters {} is below what the shape implies ({floor})",
            e.parameters
        ));
    }
    if e.source.is_none() && e.gguf.is_none() {
        return Err("neither `source` nor `gguf` says where to get the weights".into());
    }
    if let Some(src) = &e.source {
        if !is_repo_id(&src.repo) {
            return Err(format!(
                "`source.repo` `{}` is not a Hugging Face repository id",
                src.repo
            ));
        }
        if !is_revision(&src.revision) {
            return Err(format!(
                "`source.revision` `{}` is not a branch or commit",
                src.revision
            ));
        }
    }
    if let Some(g) = &e.gguf {
        if !is_repo_id(&g.repo) {
            return Err(format!(
                "`gguf.repo` `{}` is not a Hugging Face repository id",
                g.repo
            ));
        }
        if !is_revision(&g.revision) {
            return Err(format!(
                "`gguf.revision` `{}` is not a branch or commit",
                g.revision
            ));
        }
        if g.files.is_empty() {
            return Err("`gguf.files` is empty".into());
        }
        let mut seen = HashSet::new();
        for (q, f) in &g.files {
            if !f.ends_with(".gguf") || f.starts_with('/') || f.contains("..") {
                return Err(format!("`gguf.files.{q}` `{f}` is not a GGUF file path"));
            }
            if !seen.insert(f) {
                return Err(format!("`gguf.files` names `{f}` twice"));
            }
        }
    }
    if e.acquisition(e.recommended_quant).is_none() {
        return Err(format!(
            "the recommended quant {} cannot be obtained",
            e.recommended_quant
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
id = "tiny-instruct"
name = "Tiny"
family = "tiny"
architecture = "llama"
parameters = 135_000_000
context_length = 8192
license = "Apache-2.0"
languages = ["en"]
strengths = ["chat"]
description = "A small model."
recommended_quant = "Q8_0"
[shape]
layers = 30
hidden = 576
heads = 9
kv_heads = 3
head_dim = 64
vocab = 49152
tied_embeddings = true
[gguf]
repo = "org/tiny-GGUF"
revision = "main"
files = { Q8_0 = "tiny-q8_0.gguf" }
"#;

    fn parse(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_sources([("tiny.toml".to_string(), text.to_string())])
    }

    #[test]
    fn sample_loads_and_answers() {
        let c = parse(SAMPLE).unwrap();
        let e = c.require("tiny-instruct").unwrap();
        assert_eq!(e.available_quants(), vec![Quant::Q8_0]);
        assert_eq!(e.kv_bytes_per_token(), 2 * 30 * 3 * 64 * 2);
        assert!(e.acquisition(Quant::Q4KM).is_none());
    }

    #[test]
    fn rejects_unknown_architecture_and_bad_repo() {
        let bad = SAMPLE.replace("\"llama\"", "\"mamba\"");
        assert!(matches!(parse(&bad), Err(CatalogError::Invalid { .. })));
        let bad = SAMPLE.replace("org/tiny-GGUF", "not a repo");
        assert!(matches!(parse(&bad), Err(CatalogError::Invalid { .. })));
        let bad = SAMPLE.replace(
            "recommended_quant = \"Q8_0\"",
            "recommended_quant = \"Q4_K_M\"",
        );
        assert!(matches!(parse(&bad), Err(CatalogError::Invalid { .. })));
        let bad = SAMPLE.replace("languages = [\"en\"]", "languages = [\"English\"]");
        assert!(matches!(parse(&bad), Err(CatalogError::Invalid { .. })));
        let bad = SAMPLE.replace(
            "license = \"Apache-2.0\"",
            "license = \"Apache-2.0\"\nsurprise = 1",
        );
        assert!(matches!(parse(&bad), Err(CatalogError::Parse { .. })));
    }

    #[test]
    fn rejects_duplicate_ids() {
        let r = Catalog::from_sources([
            ("a.toml".to_string(), SAMPLE.to_string()),
            ("b.toml".to_string(), SAMPLE.to_string()),
        ]);
        assert!(matches!(r, Err(CatalogError::DuplicateId { .. })));
    }
}
