//! Models from the catalog onto this machine, for a front end: the catalog judged against this
//! computer (fit, memory, predicted and measured speed, what is installed), one recommendation
//! for a first run, and pulls that run on a background thread with progress, pause, resume and
//! cancel.
//!
//! What a caller may rely on:
//! - [`Downloads::catalog`] and [`Downloads::recommendation`] do no network work. The first call
//!   on a machine measures memory bandwidth (about a second) and keeps it in `hardware.json` in
//!   the data folder; later calls read it back.
//! - [`Downloads::pull`] returns at once; every outcome arrives through the sink as one final
//!   event: `done`, `paused`, `cancelled` or `failed` (with an [`AppError`] whose code starts with
//!   `download.`).
//! - Pause stops the transfer and keeps the partial file (`blobs/HASH.incomplete` in the Hugging
//!   Face cache, which is what `hearth-catalog` keeps on any cancel). Resume is a new
//!   [`Downloads::pull`] of the same model: the hub client continues from the partial file with an
//!   HTTP `Range` request. A pause during on-device quantization keeps the downloaded weights;
//!   the quantized file is written again from the start on resume (the quantizer removes its
//!   partial output).
//! - Cancel stops the transfer and deletes the partial files of that model; nothing is installed.
//!   Cancelling a paused pull deletes its partial files too.
//! - A pulled model becomes the default model when no default is set.
//! - A freshly installed model of at most [`MEASURE_MAX_BYTES`] is run briefly once to measure its
//!   decode speed, which the catalog then shows next to the prediction (a `measured` event follows
//!   `done`).
//! - Hub settings, first found wins, as for the command line: `HF_ENDPOINT`, then the
//!   `models.hub_endpoint` setting (the Settings view's download endpoint), then the public hub;
//!   the token from `HF_TOKEN` (or the Hugging Face token file), then the `models.hub_token`
//!   setting. Downloads land in the Hugging Face cache (`HF_HOME`), shared with other tools.
//! - Only one pull per catalog repository runs at a time (`download.busy` otherwise).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_catalog::catalog::Acquisition;
use hearth_catalog::convert::{ConvertError, ConvertProgress};
use hearth_catalog::hardware::{Fit, Hardware, ModelCost};
use hearth_catalog::installed::{InstallError, InstalledModels};
use hearth_catalog::pull::{installed_id, pull, PullEvent};
use hearth_catalog::{Catalog, CatalogEntry, DownloadProgress, Hub, HubConfig, HubError, Quant};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::models::{self, InstalledModel};
use crate::{Assistant, Result};

/// Context length (tokens) that memory fit is judged at when the `models.fit_context` setting is
/// not set.
pub const DEFAULT_FIT_CONTEXT: u64 = 4096;
/// The setting that overrides [`DEFAULT_FIT_CONTEXT`].
pub const FIT_CONTEXT_KEY: &str = "models.fit_context";
/// The setting naming the hub or mirror to download from.
pub const HUB_ENDPOINT_KEY: &str = "models.hub_endpoint";
/// The setting holding an access token for gated repositories.
pub const HUB_TOKEN_KEY: &str = "models.hub_token";
/// Models up to this size are measured right after they are installed.
pub const MEASURE_MAX_BYTES: u64 = 1_000_000_000;
/// Predicted decode speed (tokens per second) under which a model counts as slow for chat.
pub const COMFORTABLE_TOKENS_PER_SECOND: f64 = 8.0;

/// Progress events are passed on at most this often (the final one always).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What went wrong with the catalog or a pull; [`AppError`] codes are given per variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// `download.unknown_model`
    #[error("The catalog has no model called {0}.")]
    UnknownModel(String),
    /// `download.unknown_quant`
    #[error("{model} is not offered at {quant}.")]
    UnknownQuant { model: String, quant: String },
    /// `download.no_source`: on-device quantization asked for a model with no safetensors source.
    #[error("{0} has no original weights to quantize on this computer.")]
    NoSource(String),
    /// `download.busy`
    #[error("{0} is already being downloaded.")]
    Busy(String),
    /// `download.no_job`
    #[error("No download {0} is running or paused.")]
    NoJob(u64),
    /// `download.offline`
    #[error("Cannot reach the download server ({0}). Check the connection or the download endpoint in Settings; the part already downloaded is kept.")]
    Offline(String),
    /// `download.not_found`
    #[error("The download server does not have this model file ({0}). The endpoint in Settings may point at a mirror that lacks it.")]
    NotFound(String),
    /// `download.unauthorized`
    #[error("{0}")]
    Unauthorized(String),
    /// `download.unavailable`
    #[error("The download server is busy or failing ({0}); try again later.")]
    Unavailable(String),
    /// `download.disk_full`
    #[error("Not enough disk space: {0}")]
    DiskFull(String),
    /// `download.checksum`
    #[error(
        "The downloaded file was damaged on the way and has been deleted ({0}). Download it again."
    )]
    Checksum(String),
    /// `download.cancelled`
    #[error("The download was cancelled.")]
    Cancelled,
    /// `download.quantize`
    #[error("Quantizing on this computer failed: {0}")]
    Quantize(String),
    /// `download.invalid_model`
    #[error("The downloaded file is not a model Hearth can run: {0}")]
    InvalidModel(String),
    /// `download.server`
    #[error("The download server gave an answer Hearth does not understand: {0}")]
    Server(String),
    /// `download.io`
    #[error("{0}")]
    Io(String),
    /// `download.catalog`
    #[error("The model catalog could not be read: {0}")]
    Catalog(String),
}

impl DownloadError {
    pub fn code(&self) -> &'static str {
        use DownloadError as D;
        match self {
            D::UnknownModel(_) => "download.unknown_model",
            D::UnknownQuant { .. } => "download.unknown_quant",
            D::NoSource(_) => "download.no_source",
            D::Busy(_) => "download.busy",
            D::NoJob(_) => "download.no_job",
            D::Offline(_) => "download.offline",
            D::NotFound(_) => "download.not_found",
            D::Unauthorized(_) => "download.unauthorized",
            D::Unavailable(_) => "download.unavailable",
            D::DiskFull(_) => "download.disk_full",
            D::Checksum(_) => "download.checksum",
            D::Cancelled => "download.cancelled",
            D::Quantize(_) => "download.quantize",
            D::InvalidModel(_) => "download.invalid_model",
            D::Server(_) => "download.server",
            D::Io(_) => "download.io",
            D::Catalog(_) => "download.catalog",
        }
    }
}

impl From<DownloadError> for AppError {
    fn from(e: DownloadError) -> Self {
        AppError::new(e.code(), e.to_string())
    }
}

impl From<HubError> for DownloadError {
    fn from(e: HubError) -> Self {
        use DownloadError as D;
        let text = e.to_string();
        match e {
            HubError::Network { .. } | HubError::NotCached { .. } => D::Offline(text),
            HubError::NotFound { .. } => D::NotFound(text),
            HubError::Unauthorized { .. } => D::Unauthorized(text),
            HubError::Unavailable { .. } => D::Unavailable(text),
            HubError::InsufficientDisk { .. } | HubError::DiskFull { .. } => D::DiskFull(text),
            HubError::ChecksumMismatch { .. } | HubError::ChangedUpstream { .. } => {
                D::Checksum(text)
            }
            HubError::Cancelled { .. } => D::Cancelled,
            HubError::Io { .. } => D::Io(text),
            _ => D::Server(text),
        }
    }
}

impl From<InstallError> for DownloadError {
    fn from(e: InstallError) -> Self {
        use DownloadError as D;
        let text = e.to_string();
        match e {
            InstallError::Hub(h) => h.into(),
            InstallError::Convert(ConvertError::Cancelled) => D::Cancelled,
            InstallError::Convert(ConvertError::InsufficientDisk { .. }) => D::DiskFull(text),
            InstallError::Convert(_) | InstallError::NoWeights { .. } => D::Quantize(text),
            InstallError::NotGguf { .. } | InstallError::UnsupportedArchitecture { .. } => {
                D::InvalidModel(text)
            }
            _ => D::Io(text),
        }
    }
}

/// The computer the catalog is judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSummary {
    pub cpu: String,
    pub logical_cores: usize,
    pub physical_cores: Option<usize>,
    pub total_memory: u64,
    pub available_memory: u64,
    pub bandwidth_bytes_per_second: Option<f64>,
}

/// One quantization of a catalog model, judged for this computer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuantChoice {
    /// `Q4_K_M`, `Q8_0`, ...
    pub quant: String,
    pub recommended: bool,
    /// `fits`, `tight` or `wont_fit` at the catalog's context.
    pub fit: Fit,
    /// Memory needed at that context (weights, cache, working buffers), in bytes.
    pub memory_needed: u64,
    /// Estimated size of the model file, in bytes.
    pub file_bytes: u64,
    /// Predicted decode speed on this computer (tokens per second).
    pub predicted_tokens_per_second: Option<f64>,
    /// `download` (a ready file) or `quantize` (the weights are quantized on this computer).
    pub comes_from: String,
    /// The id it is (or would be) installed under.
    pub installed_id: String,
    pub installed: bool,
    pub is_default: bool,
    /// Decode speed measured with the installed file (tokens per second).
    pub measured_tokens_per_second: Option<f64>,
}

/// One catalog model with every quantization it can be had at (the recommended one first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogModel {
    pub id: String,
    pub name: String,
    pub description: String,
    pub architecture: String,
    pub parameters: u64,
    pub context_length: u32,
    pub license: String,
    pub license_url: Option<String>,
    pub languages: Vec<String>,
    pub strengths: Vec<String>,
    pub recommended_quant: String,
    pub quants: Vec<QuantChoice>,
    /// The original weights are listed: any quantization can be made on this computer.
    pub can_quantize_here: bool,
    /// The download needs an access token (the repository's terms must be accepted first).
    pub gated: bool,
}

/// The catalog as this computer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineCatalog {
    pub machine: MachineSummary,
    /// The context length (tokens) fit was judged at.
    pub context: u64,
    pub models: Vec<CatalogModel>,
}

/// Why a model was recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationReason {
    /// The largest model that fits with room to spare and is fast enough to chat with.
    Comfortable,
    /// Fits, but nothing is fast enough to chat comfortably: the fastest that fits.
    Slow,
    /// Nothing fits with room to spare: the smallest model, which needs other programs closed.
    Tight,
}

/// The one model a first run suggests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub model: CatalogModel,
    pub quant: String,
    pub reason: RecommendationReason,
    /// The reason in English (front ends write their own from `reason` and the numbers).
    pub explanation: String,
}

/// What to pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    pub catalog_id: String,
    /// None: the catalog's recommended quantization.
    #[serde(default)]
    pub quant: Option<String>,
    /// Download the original weights and quantize them here, even when a ready file exists.
    #[serde(default)]
    pub quantize_here: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullStarted {
    pub job_id: u64,
    pub installed_id: String,
    pub quant: String,
}

/// Something happening during a pull. The last event of a pull is `done` (possibly followed by
/// `measured`), `paused`, `cancelled` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DownloadEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        job_id: u64,
        catalog_id: String,
        quant: String,
        installed_id: String,
        quantize_here: bool,
    },
    #[serde(rename_all = "camelCase")]
    Progress {
        job_id: u64,
        file: String,
        /// Bytes on disk, resumed bytes included.
        downloaded: u64,
        total: Option<u64>,
        /// Bytes that were already there when this pull started.
        resumed_from: u64,
        bytes_per_second: f64,
        eta_seconds: Option<f64>,
        /// A dropped connection is being retried (attempt number), or 0.
        retrying: u32,
    },
    #[serde(rename_all = "camelCase")]
    Quantizing {
        job_id: u64,
        tensors_done: usize,
        tensors_total: usize,
        bytes_written: u64,
        bytes_total: u64,
    },
    #[serde(rename_all = "camelCase")]
    Done {
        job_id: u64,
        model: InstalledModel,
        made_default: bool,
    },
    #[serde(rename_all = "camelCase")]
    Measured {
        job_id: u64,
        installed_id: String,
        tokens_per_second: f64,
    },
    #[serde(rename_all = "camelCase")]
    Paused {
        job_id: u64,
        downloaded: u64,
        total: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Cancelled { job_id: u64 },
    #[serde(rename_all = "camelCase")]
    Failed { job_id: u64, error: AppError },
    /// A model that is not a chat model (the embedding model for document search) is in place.
    #[serde(rename_all = "camelCase")]
    Installed {
        job_id: u64,
        installed_id: String,
        folder: String,
    },
}

/// The sentence-embedding model that finds document passages by meaning (all-MiniLM-L6-v2).
pub const EMBEDDING_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Its revision on the hub.
pub const EMBEDDING_REVISION: &str = "main";
/// The files it needs, weights first.
pub const EMBEDDING_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];
/// SHA-256 of its weights, checked after the download whatever the server says.
pub const EMBEDDING_WEIGHTS_SHA256: &str =
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Where download events go (a UI channel, a test's collector).
pub type DownloadSink = Box<dyn Fn(DownloadEvent) + Send + Sync>;

/// How [`Downloads`] reaches the hub.
#[derive(Clone, Debug)]
pub struct DownloadsConfig {
    /// Endpoint, token, cache folder and retry policy before the settings apply.
    pub hub: HubConfig,
    /// Run a newly installed small model once to measure its speed.
    pub measure_after_install: bool,
}

impl Default for DownloadsConfig {
    fn default() -> Self {
        Self {
            hub: HubConfig::from_env(),
            measure_after_install: true,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    Pause,
    Cancel,
}

struct Job {
    repo: String,
    revision: String,
    /// The file of a ready download; None when the weights are quantized here.
    file: Option<String>,
    flag: Arc<AtomicBool>,
    stop: Stop,
    running: bool,
}

struct Inner {
    assistant: Assistant,
    config: DownloadsConfig,
    jobs: Mutex<HashMap<u64, Job>>,
    next_job: AtomicU64,
}

/// The catalog and pulls for one [`Assistant`]. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Downloads {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_quant(
    entry: &CatalogEntry,
    quant: Option<&str>,
) -> std::result::Result<Quant, DownloadError> {
    let Some(q) = quant else {
        return Ok(entry.recommended_quant);
    };
    let unknown = || DownloadError::UnknownQuant {
        model: entry.id.clone(),
        quant: q.to_string(),
    };
    let quant: Quant = q.parse().map_err(|_| unknown())?;
    if entry.available_quants().contains(&quant) {
        Ok(quant)
    } else {
        Err(unknown())
    }
}

impl Downloads {
    /// Downloads with the hub configuration from the environment.
    pub fn new(assistant: Assistant) -> Self {
        Self::with_config(assistant, DownloadsConfig::default())
    }

    pub fn with_config(assistant: Assistant, config: DownloadsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                assistant,
                config,
                jobs: Mutex::new(HashMap::new()),
                next_job: AtomicU64::new(1),
            }),
        }
    }

    fn store(&self) -> &hearth_store::Store {
        self.inner.assistant.store()
    }

    fn data_dir(&self) -> PathBuf {
        self.store()
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn models_dir(&self) -> PathBuf {
        self.data_dir().join("models")
    }

    /// The hub as the environment and the settings configure it (see the module header).
    pub fn hub_config(&self) -> HubConfig {
        let mut cfg = self.inner.config.hub.clone();
        let store = self.store();
        if std::env::var_os("HF_ENDPOINT").is_none() {
            if let Ok(Some(e)) = store.setting_text(HUB_ENDPOINT_KEY) {
                if !e.trim().is_empty() {
                    cfg.endpoint = e.trim().trim_end_matches('/').to_string();
                }
            }
        }
        if cfg.token.is_none() {
            cfg.token = store
                .setting_text(HUB_TOKEN_KEY)
                .ok()
                .flatten()
                .filter(|t| !t.trim().is_empty());
        }
        cfg
    }

    fn catalog_source() -> std::result::Result<Catalog, DownloadError> {
        Catalog::builtin().map_err(|e| DownloadError::Catalog(e.to_string()))
    }

    /// The context fit is judged at: `models.fit_context`, else [`DEFAULT_FIT_CONTEXT`].
    pub fn fit_context(&self) -> u64 {
        self.store()
            .setting_int(FIT_CONTEXT_KEY)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(DEFAULT_FIT_CONTEXT)
    }

    /// The catalog judged for this computer at `context` tokens (None: [`Self::fit_context`]).
    pub fn catalog(&self, context: Option<u64>) -> Result<MachineCatalog> {
        let context = context.unwrap_or_else(|| self.fit_context());
        let catalog = Self::catalog_source()?;
        let hw = Hardware::detect_measured(&self.data_dir().join("hardware.json"));
        let installed = self.store().list_models()?;
        let default = models::default_model_id(self.store())?;
        let mut out = Vec::new();
        for e in catalog.entries() {
            let mut quants = e.available_quants();
            // The recommended one first, then the others from smallest to largest.
            quants.sort_by(|a, b| {
                (*b == e.recommended_quant)
                    .cmp(&(*a == e.recommended_quant))
                    .then(a.bits_per_weight().total_cmp(&b.bits_per_weight()))
            });
            let mut choices = Vec::new();
            for q in quants {
                let a = hw.assess(&ModelCost::estimate(e, q), q, context);
                let id = installed_id(e, q);
                let record = installed
                    .iter()
                    .find(|m| m.id == id && Path::new(&m.path).is_file());
                let measured = match record {
                    Some(_) => self.store().measured_speed(&id).unwrap_or(None),
                    None => None,
                };
                let comes_from = match e.acquisition(q) {
                    Some(Acquisition::Gguf { .. }) => "download",
                    _ => "quantize",
                };
                choices.push(QuantChoice {
                    quant: q.name().to_string(),
                    recommended: q == e.recommended_quant,
                    fit: a.fit,
                    memory_needed: a.memory_needed,
                    file_bytes: e.estimated_file_bytes(q),
                    predicted_tokens_per_second: a.predicted_tokens_per_second,
                    comes_from: comes_from.into(),
                    is_default: record.is_some() && default.as_deref() == Some(id.as_str()),
                    installed: record.is_some(),
                    installed_id: id,
                    measured_tokens_per_second: measured,
                });
            }
            out.push(CatalogModel {
                id: e.id.clone(),
                name: e.name.clone(),
                description: e.description.clone(),
                architecture: e.architecture.clone(),
                parameters: e.parameters,
                context_length: e.context_length,
                license: e.license.clone(),
                license_url: e.license_url.clone(),
                languages: e.languages.clone(),
                strengths: e.strengths.clone(),
                recommended_quant: e.recommended_quant.name().to_string(),
                quants: choices,
                can_quantize_here: e.source.is_some(),
                gated: e.gguf.as_ref().is_some_and(|g| g.gated)
                    || (e.gguf.is_none() && e.source.as_ref().is_some_and(|s| s.gated)),
            });
        }
        Ok(MachineCatalog {
            machine: MachineSummary {
                cpu: hw.cpu.clone(),
                logical_cores: hw.logical_cores,
                physical_cores: hw.physical_cores,
                total_memory: hw.total_memory,
                available_memory: hw.available_memory,
                bandwidth_bytes_per_second: hw.bandwidth.as_ref().map(|b| b.bytes_per_second),
            },
            context,
            models: out,
        })
    }

    /// The one model to suggest on this computer (see [`recommend`]). Models that suit the UI
    /// language (Chinese for `zh-CN`) are preferred.
    pub fn recommendation(&self) -> Result<Recommendation> {
        let catalog = self.catalog(None)?;
        let language = crate::Settings::load(self.store())?.language;
        let wanted = language.split('-').next().unwrap_or("en").to_string();
        recommend(&catalog, &wanted)
            .ok_or_else(|| AppError::from(DownloadError::Catalog("the catalog is empty".into())))
    }

    /// Starts pulling a catalog model; events go to `sink` (see [`DownloadEvent`]).
    pub fn pull(&self, req: PullRequest, sink: DownloadSink) -> Result<PullStarted> {
        let catalog = Self::catalog_source()?;
        let entry = catalog
            .get(&req.catalog_id)
            .ok_or_else(|| DownloadError::UnknownModel(req.catalog_id.clone()))?
            .clone();
        let quant = parse_quant(&entry, req.quant.as_deref())?;
        let mut entry = entry;
        if req.quantize_here {
            if entry.source.is_none() {
                return Err(DownloadError::NoSource(entry.id.clone()).into());
            }
            // Without the ready files, the pull takes the original weights and quantizes them.
            entry.gguf = None;
        }
        let (repo, revision, file) = match entry.acquisition(quant) {
            Some(Acquisition::Gguf {
                repo,
                revision,
                file,
            }) => (repo, revision, Some(file)),
            Some(Acquisition::Quantize { repo, revision }) => (repo, revision, None),
            None => {
                return Err(DownloadError::UnknownQuant {
                    model: entry.id.clone(),
                    quant: quant.name().into(),
                }
                .into())
            }
        };
        let id = installed_id(&entry, quant);
        let flag = Arc::new(AtomicBool::new(false));
        let job_id = {
            let mut jobs = lock(&self.inner.jobs);
            if jobs.values().any(|j| j.running && j.repo == repo) {
                return Err(DownloadError::Busy(entry.name.clone()).into());
            }
            // A paused pull of the same file is resumed by this one.
            jobs.retain(|_, j| !(j.repo == repo && j.file == file));
            let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
            jobs.insert(
                job_id,
                Job {
                    repo,
                    revision,
                    file,
                    flag: flag.clone(),
                    stop: Stop::None,
                    running: true,
                },
            );
            job_id
        };
        let this = self.clone();
        let started = PullStarted {
            job_id,
            installed_id: id.clone(),
            quant: quant.name().into(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("pull-{id}"))
            .spawn(move || {
                sink(DownloadEvent::Started {
                    job_id,
                    catalog_id: entry.id.clone(),
                    quant: quant.name().into(),
                    installed_id: id.clone(),
                    quantize_here: req.quantize_here,
                });
                this.run(job_id, &entry, quant, &flag, &sink);
            });
        if let Err(e) = spawned {
            lock(&self.inner.jobs).remove(&job_id);
            return Err(DownloadError::Io(format!("cannot start the download: {e}")).into());
        }
        Ok(started)
    }

    fn run(
        &self,
        job_id: u64,
        entry: &CatalogEntry,
        quant: Quant,
        flag: &AtomicBool,
        sink: &DownloadSink,
    ) {
        let hub = Hub::new(self.hub_config());
        let mut last = Instant::now() - PROGRESS_EVERY;
        let mut bytes: (u64, Option<u64>) = (0, None);
        let mut on_event = |e: PullEvent<'_>| match e {
            PullEvent::Download(p) => {
                bytes = (p.downloaded, p.total);
                if p.done || last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    sink(progress(job_id, p));
                }
            }
            PullEvent::Quantize(p) => {
                if p.tensors_done == p.tensors_total || last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    sink(quantizing(job_id, p));
                }
            }
        };
        let result = pull(
            entry,
            quant,
            &hub,
            &self.models_dir(),
            self.store(),
            &mut on_event,
            flag,
        );
        let stop = {
            let mut jobs = lock(&self.inner.jobs);
            let stop = jobs.get(&job_id).map(|j| j.stop).unwrap_or(Stop::None);
            match (&result, stop) {
                (Err(_), Stop::Pause) => {
                    if let Some(j) = jobs.get_mut(&job_id) {
                        j.running = false;
                    }
                }
                _ => {
                    jobs.remove(&job_id);
                }
            }
            stop
        };
        match result {
            Ok(m) => match self.installed(&m.id) {
                Ok((model, made_default)) => {
                    sink(DownloadEvent::Done {
                        job_id,
                        model: model.clone(),
                        made_default,
                    });
                    if self.inner.config.measure_after_install
                        && model.size_bytes <= MEASURE_MAX_BYTES
                        && self
                            .store()
                            .measured_speed(&model.id)
                            .ok()
                            .flatten()
                            .is_none()
                    {
                        if let Some(s) = measure_speed(Path::new(&model.path)) {
                            if self.store().record_speed(&model.id, s).is_ok() {
                                sink(DownloadEvent::Measured {
                                    job_id,
                                    installed_id: model.id.clone(),
                                    tokens_per_second: s,
                                });
                            }
                        }
                    }
                }
                Err(error) => sink(DownloadEvent::Failed { job_id, error }),
            },
            Err(e) => {
                let e = DownloadError::from(e);
                match (e, stop) {
                    (DownloadError::Cancelled, Stop::Pause) => sink(DownloadEvent::Paused {
                        job_id,
                        downloaded: bytes.0,
                        total: bytes.1,
                    }),
                    (DownloadError::Cancelled, _) => {
                        discard_partials(&hub, entry, quant);
                        sink(DownloadEvent::Cancelled { job_id });
                    }
                    (e, _) => sink(DownloadEvent::Failed {
                        job_id,
                        error: e.into(),
                    }),
                }
            }
        }
    }

    /// The installed record as front ends see it; makes it the default when none is set.
    fn installed(&self, id: &str) -> Result<(InstalledModel, bool)> {
        let store = self.store();
        let set = store
            .setting_text(models::DEFAULT_KEY)?
            .is_some_and(|d| store.model(&d).is_ok());
        if !set {
            models::set_default(store, id)?;
        }
        let model = models::list(store)?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| DownloadError::Io(format!("{id} was installed but is not listed")))?;
        Ok((model, !set))
    }

    /// Pauses a running pull: the transfer stops and the partial file is kept for a later
    /// [`Self::pull`] of the same model to resume.
    pub fn pause(&self, job_id: u64) -> Result<()> {
        let mut jobs = lock(&self.inner.jobs);
        match jobs.get_mut(&job_id) {
            Some(j) if j.running => {
                j.stop = Stop::Pause;
                j.flag.store(true, Ordering::SeqCst);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(DownloadError::NoJob(job_id).into()),
        }
    }

    /// Cancels a running or paused pull; its partial files are deleted.
    pub fn cancel(&self, job_id: u64) -> Result<()> {
        let paused = {
            let mut jobs = lock(&self.inner.jobs);
            match jobs.get_mut(&job_id) {
                Some(j) if j.running => {
                    j.stop = Stop::Cancel;
                    j.flag.store(true, Ordering::SeqCst);
                    None
                }
                Some(_) => jobs.remove(&job_id),
                None => return Err(DownloadError::NoJob(job_id).into()),
            }
        };
        if let Some(j) = paused {
            let hub = Hub::new(self.hub_config());
            discard_job_partials(&hub, &j.repo, &j.revision, j.file.as_deref());
        }
        Ok(())
    }

    /// Downloads the embedding model for document search ([`EMBEDDING_REPO`]) into
    /// `<data folder>/models/all-minilm-l6-v2`, where questions about documents find it. Returns
    /// at once; events as for [`Self::pull`], ending with `installed` (or `cancelled`,
    /// `failed`). The weights are checked against [`EMBEDDING_WEIGHTS_SHA256`] and the model is
    /// loaded once before it is put in place, so a bad download never replaces a good model.
    /// Cancel with [`Self::cancel`]. Documents already added are then indexed by meaning in the
    /// background.
    pub fn pull_embedding_model(&self, sink: DownloadSink) -> Result<PullStarted> {
        let id = crate::embed::EMBEDDING_MODEL_ID.to_string();
        let flag = Arc::new(AtomicBool::new(false));
        let job_id = {
            let mut jobs = lock(&self.inner.jobs);
            if jobs.values().any(|j| j.running && j.repo == EMBEDDING_REPO) {
                return Err(DownloadError::Busy("The search model".into()).into());
            }
            jobs.retain(|_, j| j.repo != EMBEDDING_REPO);
            let job_id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
            jobs.insert(
                job_id,
                Job {
                    repo: EMBEDDING_REPO.into(),
                    revision: EMBEDDING_REVISION.into(),
                    file: None,
                    flag: flag.clone(),
                    stop: Stop::None,
                    running: true,
                },
            );
            job_id
        };
        let this = self.clone();
        let installed_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name("pull-embedding-model".into())
            .spawn(move || {
                sink(DownloadEvent::Started {
                    job_id,
                    catalog_id: installed_id.clone(),
                    quant: "F32".into(),
                    installed_id: installed_id.clone(),
                    quantize_here: false,
                });
                let hub = Hub::new(this.hub_config());
                let result = this.fetch_embedding_model(&hub, job_id, &flag, &sink);
                let stop = lock(&this.inner.jobs)
                    .remove(&job_id)
                    .map(|j| j.stop)
                    .unwrap_or(Stop::None);
                match result {
                    Ok(folder) => {
                        sink(DownloadEvent::Installed {
                            job_id,
                            installed_id,
                            folder: folder.display().to_string(),
                        });
                        if let Ok(docs) = this.inner.assistant.documents() {
                            for d in docs {
                                this.inner.assistant.embed_in_background(d.id);
                            }
                        }
                    }
                    Err(e) if e.code == "download.cancelled" || stop != Stop::None => {
                        discard_job_partials(&hub, EMBEDDING_REPO, EMBEDDING_REVISION, None);
                        sink(DownloadEvent::Cancelled { job_id });
                    }
                    Err(error) => sink(DownloadEvent::Failed { job_id, error }),
                }
            });
        if let Err(e) = spawned {
            lock(&self.inner.jobs).remove(&job_id);
            return Err(DownloadError::Io(format!("cannot start the download: {e}")).into());
        }
        Ok(PullStarted {
            job_id,
            installed_id: id,
            quant: "F32".into(),
        })
    }

    fn fetch_embedding_model(
        &self,
        hub: &Hub,
        job_id: u64,
        flag: &AtomicBool,
        sink: &DownloadSink,
    ) -> Result<PathBuf> {
        let mut last = Instant::now() - PROGRESS_EVERY;
        let files = hub
            .download_files(
                EMBEDDING_REPO,
                EMBEDDING_REVISION,
                &EMBEDDING_FILES,
                &mut |p| {
                    if p.done || last.elapsed() >= PROGRESS_EVERY {
                        last = Instant::now();
                        sink(progress(job_id, p));
                    }
                },
                flag,
            )
            .map_err(DownloadError::from)?;
        let weights = &files[0].path;
        let sha = hearth_documents::sha256_file(weights)
            .map_err(|e| DownloadError::Io(format!("cannot read {}: {e}", weights.display())))?;
        if sha != EMBEDDING_WEIGHTS_SHA256 {
            let _ = std::fs::remove_file(&files[0].blob);
            return Err(DownloadError::Checksum(format!(
                "{EMBEDDING_REPO}/model.safetensors has SHA-256 {sha}, expected {EMBEDDING_WEIGHTS_SHA256}"
            ))
            .into());
        }
        // Put together beside the final folder, checked, then moved into place in one step.
        let models = self.models_dir();
        let dest = models.join(crate::embed::EMBEDDING_MODEL_ID);
        let staging = models.join(format!(".{}.partial", crate::embed::EMBEDDING_MODEL_ID));
        let io = |e: std::io::Error| -> AppError {
            if e.raw_os_error() == Some(28) {
                DownloadError::DiskFull(e.to_string()).into()
            } else {
                DownloadError::Io(format!("cannot install the search model: {e}")).into()
            }
        };
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io)?;
        for (name, f) in EMBEDDING_FILES.iter().zip(&files) {
            std::fs::copy(&f.path, staging.join(name)).map_err(io)?;
        }
        if let Err(e) = crate::embed::Embedder::load(&staging) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(DownloadError::InvalidModel(e.to_string()).into());
        }
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io)?;
        }
        std::fs::rename(&staging, &dest).map_err(io)?;
        Ok(dest)
    }

    /// Ids of the pulls that are paused (a cancel of one deletes its partial file).
    pub fn paused(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = lock(&self.inner.jobs)
            .iter()
            .filter(|(_, j)| !j.running)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The model to suggest: among the recommended quantizations, the largest model that fits with
/// room to spare and is predicted at [`COMFORTABLE_TOKENS_PER_SECOND`] or more; else the fastest
/// that fits; else the smallest. Models that list `language` are preferred when any qualifies.
pub fn recommend(catalog: &MachineCatalog, language: &str) -> Option<Recommendation> {
    let pick = |models: Vec<&CatalogModel>| -> Option<Recommendation> {
        let first = |m: &CatalogModel| m.quants.first().cloned();
        let speed = |q: &QuantChoice| q.predicted_tokens_per_second.unwrap_or(0.0);
        let comfortable = models
            .iter()
            .filter_map(|m| first(m).map(|q| (*m, q)))
            .filter(|(_, q)| {
                q.fit == Fit::Fits
                    && q.predicted_tokens_per_second
                        .is_none_or(|t| t >= COMFORTABLE_TOKENS_PER_SECOND)
            })
            .max_by(|(a, qa), (b, qb)| {
                a.parameters
                    .cmp(&b.parameters)
                    .then(speed(qa).total_cmp(&speed(qb)))
            });
        if let Some((m, q)) = comfortable {
            let explanation = format!(
                "{} fits in this computer's memory with room to spare and should write about {:.0} tokens a second here: the most capable model that does.",
                m.name,
                speed(&q)
            );
            return Some(Recommendation {
                model: m.clone(),
                quant: q.quant,
                reason: RecommendationReason::Comfortable,
                explanation,
            });
        }
        let fastest_fit = models
            .iter()
            .filter_map(|m| first(m).map(|q| (*m, q)))
            .filter(|(_, q)| q.fit == Fit::Fits)
            .max_by(|(_, qa), (_, qb)| speed(qa).total_cmp(&speed(qb)));
        if let Some((m, q)) = fastest_fit {
            let explanation = format!(
                "{} is the fastest model that fits here, at about {:.1} tokens a second; answers will take a while.",
                m.name,
                speed(&q)
            );
            return Some(Recommendation {
                model: m.clone(),
                quant: q.quant,
                reason: RecommendationReason::Slow,
                explanation,
            });
        }
        let smallest = models
            .iter()
            .filter_map(|m| first(m).map(|q| (*m, q)))
            .min_by_key(|(_, q)| q.memory_needed)?;
        let (m, q) = smallest;
        Some(Recommendation {
            explanation: format!(
                "{} is the smallest model; memory is tight here, so close other programs before using it.",
                m.name
            ),
            model: m.clone(),
            quant: q.quant,
            reason: RecommendationReason::Tight,
        })
    };
    let speaking: Vec<&CatalogModel> = catalog
        .models
        .iter()
        .filter(|m| m.languages.iter().any(|l| l.eq_ignore_ascii_case(language)))
        .collect();
    let rank = |r: &Recommendation| match r.reason {
        RecommendationReason::Comfortable => 2,
        RecommendationReason::Slow => 1,
        RecommendationReason::Tight => 0,
    };
    match (pick(speaking), pick(catalog.models.iter().collect())) {
        (Some(p), Some(a)) => Some(if rank(&a) > rank(&p) { a } else { p }),
        (p, a) => p.or(a),
    }
}

fn progress(job_id: u64, p: &DownloadProgress) -> DownloadEvent {
    DownloadEvent::Progress {
        job_id,
        file: p.file.clone(),
        downloaded: p.downloaded,
        total: p.total,
        resumed_from: p.resumed_from,
        bytes_per_second: p.bytes_per_second,
        eta_seconds: p.eta.map(|d| d.as_secs_f64()),
        retrying: p.retrying,
    }
}

fn quantizing(job_id: u64, p: &ConvertProgress) -> DownloadEvent {
    DownloadEvent::Quantizing {
        job_id,
        tensors_done: p.tensors_done,
        tensors_total: p.tensors_total,
        bytes_written: p.bytes_written,
        bytes_total: p.bytes_total,
    }
}

/// Deletes what a cancelled pull of `entry` at `quant` left in the Hugging Face cache.
fn discard_partials(hub: &Hub, entry: &CatalogEntry, quant: Quant) {
    match entry.acquisition(quant) {
        Some(Acquisition::Gguf {
            repo,
            revision,
            file,
        }) => discard_job_partials(hub, &repo, &revision, Some(&file)),
        Some(Acquisition::Quantize { repo, revision }) => {
            discard_job_partials(hub, &repo, &revision, None)
        }
        None => {}
    }
}

/// Deletes the partial download of `file` (every partial file of the repository when `file` is
/// None). The hub's file list names the partial file; without the hub, every partial file of the
/// repository goes (no other pull of it runs: one pull per repository at a time).
fn discard_job_partials(hub: &Hub, repo: &str, revision: &str, file: Option<&str>) {
    if let Ok(info) = hub.repo_info(repo, revision) {
        match file {
            Some(f) => {
                let _ = hub.discard_partial(&info, repo, f);
            }
            None => {
                for s in &info.siblings {
                    let _ = hub.discard_partial(&info, repo, &s.rfilename);
                }
            }
        }
        return;
    }
    let blobs = hub.layout().repo_dir(repo).join("blobs");
    if let Ok(dir) = std::fs::read_dir(&blobs) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().ends_with(".incomplete") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Generates a few tokens with the model at `path` and returns its decode speed.
fn measure_speed(path: &Path) -> Option<f64> {
    use hearth_engine::{GenerationParams, LoadedModel, Prompt, SamplingParams};
    let mut m = LoadedModel::load(path, hearth_engine::default_threads()).ok()?;
    let params = GenerationParams {
        max_tokens: 24,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    };
    let stats = m
        .generate(
            &Prompt::Raw("The history of the city began".into()),
            &params,
            &AtomicBool::new(false),
            &mut |_| true,
        )
        .ok()?;
    (stats.decode_tok_s.is_finite() && stats.decode_tok_s > 0.0).then_some(stats.decode_tok_s)
}
