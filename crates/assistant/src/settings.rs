//! The user's settings: typed, with defaults, stored one key per value in the store.

use hearth_engine::SamplingParams;
use hearth_store::{SettingValue, Store};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};

/// The system prompt a new user starts with.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SamplingSettings {
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub max_tokens: u32,
    /// None: a new seed every time.
    pub seed: Option<u64>,
}

impl Default for SamplingSettings {
    fn default() -> Self {
        let d = SamplingParams::default();
        Self {
            temperature: d.temperature,
            top_k: d.top_k as u32,
            top_p: d.top_p,
            min_p: d.min_p,
            repeat_penalty: d.repeat_penalty,
            max_tokens: 1024,
            seed: None,
        }
    }
}

impl SamplingSettings {
    pub fn to_params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: 64,
            seed: self.seed,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.to_params().validate().map_err(AppError::from)?;
        if self.max_tokens == 0 || self.max_tokens > 32_768 {
            return Err(AppError::new(
                "settings.invalid",
                "The reply length must be between 1 and 32,768 tokens.",
            ));
        }
        Ok(())
    }
}

/// Limits on the documents the user adds: a file over them is refused with a message that names
/// the limit, before it is read past what the limit allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DocumentLimitSettings {
    /// Largest file, in MB (1 MB = 2^20 bytes).
    pub max_file_mb: u32,
    /// Most pages of a PDF.
    pub max_pages: u32,
    /// Most bytes that decompressing one document (ZIP entries, PDF streams) may produce, in MB.
    pub max_decompressed_mb: u32,
}

impl Default for DocumentLimitSettings {
    fn default() -> Self {
        let d = hearth_documents::Limits::default();
        Self {
            max_file_mb: (d.max_file_bytes >> 20) as u32,
            max_pages: d.max_pages,
            max_decompressed_mb: (d.max_decompressed_bytes >> 20) as u32,
        }
    }
}

impl DocumentLimitSettings {
    pub fn to_limits(&self) -> hearth_documents::Limits {
        hearth_documents::Limits {
            max_file_bytes: (self.max_file_mb as u64) << 20,
            max_pages: self.max_pages,
            max_decompressed_bytes: (self.max_decompressed_mb as u64) << 20,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(AppError::new("settings.invalid", m));
        if !(1..=16_384).contains(&self.max_file_mb) {
            return bad("The largest document must be between 1 MB and 16,384 MB.");
        }
        if !(1..=100_000).contains(&self.max_pages) {
            return bad("The page limit must be between 1 and 100,000 pages.");
        }
        if !(1..=65_536).contains(&self.max_decompressed_mb) {
            return bad("The decompression limit must be between 1 MB and 65,536 MB.");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Compute threads; 0 picks one per core. Takes effect at the next start.
    pub threads: u32,
    /// "system", "light" or "dark".
    pub theme: String,
    /// "en" or "zh-CN".
    pub language: String,
    pub system_prompt: String,
    pub sampling: SamplingSettings,
    /// Where models are downloaded from (a mirror); None: the default hub. Stored as the
    /// `models.hub_endpoint` setting, which the command line reads too.
    pub download_endpoint: Option<String>,
    /// Limits on added documents.
    pub documents: DocumentLimitSettings,
    /// The data folder in use (read only here: it is chosen before the database opens).
    pub data_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            threads: 0,
            theme: "system".into(),
            language: "en".into(),
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            sampling: SamplingSettings::default(),
            download_endpoint: None,
            documents: DocumentLimitSettings::default(),
            data_dir: String::new(),
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(AppError::new("settings.invalid", m));
        if !["system", "light", "dark"].contains(&self.theme.as_str()) {
            return bad("The theme must be system, light or dark.");
        }
        if !["en", "zh-CN"].contains(&self.language.as_str()) {
            return bad("The language must be English (en) or Simplified Chinese (zh-CN).");
        }
        if self.threads > 256 {
            return bad("Use at most 256 threads.");
        }
        if let Some(url) = &self.download_endpoint {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return bad("The download endpoint must be an http:// or https:// address.");
            }
        }
        self.documents.validate()?;
        self.sampling.validate()
    }

    /// Reads the settings; anything missing or of the wrong type takes its default.
    pub fn load(store: &Store) -> Result<Self> {
        let d = Settings::default();
        let text = |k: &str| store.setting_text(k).ok().flatten();
        let int = |k: &str| store.setting_int(k).ok().flatten();
        let float = |k: &str| store.setting_float(k).ok().flatten();
        let ds = &d.sampling;
        let mut s = Settings {
            threads: int("engine.threads")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(d.threads),
            theme: text("ui.theme").unwrap_or(d.theme.clone()),
            language: text("ui.language").unwrap_or(d.language.clone()),
            system_prompt: text("chat.system_prompt").unwrap_or(d.system_prompt.clone()),
            sampling: SamplingSettings {
                temperature: float("sampling.temperature")
                    .map(|v| v as f32)
                    .unwrap_or(ds.temperature),
                top_k: int("sampling.top_k")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(ds.top_k),
                top_p: float("sampling.top_p")
                    .map(|v| v as f32)
                    .unwrap_or(ds.top_p),
                min_p: float("sampling.min_p")
                    .map(|v| v as f32)
                    .unwrap_or(ds.min_p),
                repeat_penalty: float("sampling.repeat_penalty")
                    .map(|v| v as f32)
                    .unwrap_or(ds.repeat_penalty),
                max_tokens: int("sampling.max_tokens")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(ds.max_tokens),
                seed: int("sampling.seed").map(|v| v as u64),
            },
            download_endpoint: text(crate::downloads::HUB_ENDPOINT_KEY),
            documents: DocumentLimitSettings {
                max_file_mb: int("documents.max_file_mb")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(d.documents.max_file_mb),
                max_pages: int("documents.max_pages")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(d.documents.max_pages),
                max_decompressed_mb: int("documents.max_decompressed_mb")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(d.documents.max_decompressed_mb),
            },
            data_dir: String::new(),
        };
        // Values that no longer validate (edited by hand, older versions) fall back to defaults.
        if s.validate().is_err() {
            s = Settings {
                data_dir: String::new(),
                ..d
            };
        }
        s.data_dir = store
            .path()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Ok(s)
    }

    pub fn save(&self, store: &Store) -> Result<()> {
        self.validate()?;
        let sm = &self.sampling;
        let values = [
            ("engine.threads", SettingValue::Int(self.threads as i64)),
            ("ui.theme", SettingValue::Text(self.theme.clone())),
            ("ui.language", SettingValue::Text(self.language.clone())),
            (
                "chat.system_prompt",
                SettingValue::Text(self.system_prompt.clone()),
            ),
            (
                "sampling.temperature",
                SettingValue::Float(sm.temperature as f64),
            ),
            ("sampling.top_k", SettingValue::Int(sm.top_k as i64)),
            ("sampling.top_p", SettingValue::Float(sm.top_p as f64)),
            ("sampling.min_p", SettingValue::Float(sm.min_p as f64)),
            (
                "sampling.repeat_penalty",
                SettingValue::Float(sm.repeat_penalty as f64),
            ),
            (
                "sampling.max_tokens",
                SettingValue::Int(sm.max_tokens as i64),
            ),
            (
                "documents.max_file_mb",
                SettingValue::Int(self.documents.max_file_mb as i64),
            ),
            (
                "documents.max_pages",
                SettingValue::Int(self.documents.max_pages as i64),
            ),
            (
                "documents.max_decompressed_mb",
                SettingValue::Int(self.documents.max_decompressed_mb as i64),
            ),
        ];
        for (k, v) in &values {
            store.set_setting(k, v)?;
        }
        match sm.seed {
            Some(seed) => store.set_setting("sampling.seed", &SettingValue::Int(seed as i64))?,
            None => {
                store.delete_setting("sampling.seed")?;
            }
        }
        match &self.download_endpoint {
            Some(url) => store.set_setting(
                crate::downloads::HUB_ENDPOINT_KEY,
                &SettingValue::Text(url.clone()),
            )?,
            None => {
                store.delete_setting(crate::downloads::HUB_ENDPOINT_KEY)?;
            }
        }
        Ok(())
    }
}
