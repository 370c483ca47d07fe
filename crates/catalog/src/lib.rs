//! Which models exist and where, and getting them onto this machine in a form the engine runs.
//!
//! - [`catalog`]: the curated list of models (`models/*.toml`), validated on load.
//! - [`hub`]: Hugging Face downloads into the Hugging Face cache: progress, resume, retry,
//!   verification, cancel, offline mode.
//! - [`convert`]: on-device quantization of a safetensors model folder into a GGUF file.
//! - [`gguf_out`]: a streaming GGUF writer (tensor by tensor, constant memory).
//! - [`hardware`]: RAM, CPU features, memory bandwidth; fit and speed predictions per model.
//! - [`installed`]: the installed-models registry (kept by `hearth-store`), importing files from
//!   anywhere on disk, removing.
//! - [`pull`]: a catalog model at a quantization onto this machine (download or quantize).

pub mod catalog;
pub mod convert;
pub mod gguf_out;
pub mod hardware;
pub mod hub;
pub mod installed;
pub mod pull;
pub mod quant;

pub use catalog::{Acquisition, Catalog, CatalogEntry, CatalogError};
pub use hub::{CachedFile, DownloadProgress, Hub, HubConfig, HubError, RepoInfo, RetryPolicy};
pub use quant::Quant;
