//! Downloads from Hugging Face (or a mirror that speaks its protocol) into the Hugging Face cache
//! layout, with progress, resume, retry, verification and cancel.
//!
//! What a caller may rely on:
//! - A file returned by [`Hub::download`] is complete and verified: its size and its SHA-256 (the
//!   LFS `sha256` the hub publishes, or the git blob id for small non-LFS files) matched before it
//!   was moved into place. A file that fails verification is deleted and never installed.
//! - Files land where `huggingface_hub` puts them (`models--ORG--NAME/blobs`, `snapshots/COMMIT`,
//!   `refs/REVISION`), so a model already in the user's Hugging Face cache is reused without
//!   touching the network, and files Hearth downloads are visible to other Hugging Face tools.
//! - An interrupted download leaves `blobs/HASH.incomplete`; the next call for the same file, in
//!   this process or after a restart, resumes it with an HTTP `Range` request. Cancelling keeps the
//!   partial file for that reason; [`Hub::discard_partial`] removes it.
//! - Dropped connections, 429 and 5xx answers are retried with exponential backoff (honouring
//!   `Retry-After`); 404, 401/403, a checksum mismatch, a full disk and cancel are not.
//! - In offline mode no request is made: only the cache is consulted.

mod cache;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use cache::CacheLayout;

/// Whether a write failed because the disk (or the user's quota) is full.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The public Hugging Face endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Wraps the file a download writes to. Every byte of a download goes through the returned
/// writer, so a wrapper can throttle or fail writes (storage fault tests use this).
pub type WriteWrapper = Arc<dyn Fn(std::fs::File) -> Box<dyn std::io::Write + Send> + Send + Sync>;

/// How often and how long to retry a transient failure.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Consecutive failures (without any byte of progress between them) before giving up.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound for one delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where and how to download.
#[derive(Clone)]
pub struct HubConfig {
    /// Base URL of the hub or mirror, without a trailing slash.
    pub endpoint: String,
    /// Access token for gated or private repositories.
    pub token: Option<String>,
    /// Never touch the network; serve from the cache only.
    pub offline: bool,
    /// The Hugging Face hub cache folder (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest silence on a connection before it counts as dropped.
    pub read_timeout: Duration,
    /// Optional wrapper around the file being written (see [`WriteWrapper`]).
    pub write_wrapper: Option<WriteWrapper>,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .field("cache_dir", &self.cache_dir)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
fn hf_home() -> PathBuf {
    if let Some(h) = non_empty_env("HF_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = non_empty_env("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("huggingface");
    }
    let home = directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface")
}

impl HubConfig {
    /// The configuration the Hugging Face tools would use: `HF_ENDPOINT`, `HF_TOKEN` (or the token
    /// file under `HF_HOME`), `HF_HUB_OFFLINE`, `HF_HUB_CACHE` / `HF_HOME`.
    pub fn from_env() -> Self {
        let home = hf_home();
        let endpoint = non_empty_env("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = non_empty_env("HF_TOKEN")
            .or_else(|| non_empty_env("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = non_empty_env("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| home.join("token"));
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let cache_dir = non_empty_env("HF_HUB_CACHE")
            .or_else(|| non_empty_env("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            offline: env_flag("HF_HUB_OFFLINE"),
            cache_dir,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            write_wrapper: None,
        }
    }

    /// A configuration for `endpoint` with the cache at `cache_dir`, no token, online.
    pub fn new(endpoint: &str, cache_dir: &Path) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: None,
            offline: false,
            cache_dir: cache_dir.to_path_buf(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            write_wrapper: None,
        }
    }
}

/// What went wrong; each variant is something a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("`{0}` is not a Hugging Face repository id (expected OWNER/NAME)")]
    InvalidRepoId(String),
    #[error("not found on the hub: {what}")]
    NotFound { what: String },
    #[error("the hub refused access to {repo} (HTTP {status}): it may be gated or private; accept its terms on the website and set a token (HF_TOKEN or the settings)")]
    Unauthorized { repo: String, status: u16 },
    #[error("the hub kept answering HTTP {status} for {url}; try again later")]
    Unavailable { url: String, status: u16 },
    #[error("the hub answered HTTP {status} for {url}")]
    UnexpectedStatus { url: String, status: u16 },
    #[error("network error talking to {url}: {message}")]
    Network { url: String, message: String },
    #[error("the hub's answer for {url} is not understood: {message}")]
    InvalidResponse { url: String, message: String },
    #[error(
        "{file} failed verification: expected {expected}, got {actual}; the download was deleted"
    )]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file} changed on the hub while it was being downloaded (expected {expected}, the server now has {actual})")]
    ChangedUpstream {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("not enough free disk space in {path}: {needed} bytes needed, {available} available")]
    InsufficientDisk {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("the disk holding {path} is full; free some space and download again (the part already downloaded is kept and resumes)")]
    DiskFull { path: PathBuf },
    #[error("download of {file} cancelled; {bytes} bytes kept in {partial} to resume later")]
    Cancelled {
        file: String,
        partial: PathBuf,
        bytes: u64,
    },
    #[error("offline mode: {what} is not in the Hugging Face cache at {cache}")]
    NotCached { what: String, cache: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file of a repository as the hub lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// Git blob id (SHA-1 of the git object); the cache names non-LFS blobs by it.
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<LfsInfo>,
}

/// LFS metadata: the SHA-256 and size of the real content.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LfsInfo {
    pub sha256: String,
    pub size: u64,
}

/// A repository at one revision.
#[derive(Clone, Debug, Deserialize)]
pub struct RepoInfo {
    pub id: String,
    /// The commit the revision resolved to.
    pub sha: String,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

impl RepoInfo {
    pub fn sibling(&self, file: &str) -> Option<&Sibling> {
        self.siblings.iter().find(|s| s.rfilename == file)
    }

    /// Bytes of the listed files (LFS size where known).
    pub fn size_of(&self, file: &str) -> Option<u64> {
        self.sibling(file)
            .and_then(|s| s.lfs.as_ref().map(|l| l.size).or(s.size))
    }
}

/// A progress report for one file.
#[derive(Clone, Debug, PartialEq)]
pub struct DownloadProgress {
    pub repo: String,
    pub file: String,
    /// Bytes on disk so far, resumed bytes included.
    pub downloaded: u64,
    /// Expected size, when known.
    pub total: Option<u64>,
    /// Bytes that were already there when this call started (resumed).
    pub resumed_from: u64,
    /// Recent transfer rate.
    pub bytes_per_second: f64,
    /// Estimated time left at the recent rate.
    pub eta: Option<Duration>,
    /// A transient failure is being retried (attempt number), or 0.
    pub retrying: u32,
    /// The file is complete and verified.
    pub done: bool,
}

/// A verified file in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// `snapshots/COMMIT/FILE`, the path to open.
    pub path: PathBuf,
    /// The blob it points at.
    pub blob: PathBuf,
    pub commit: String,
    pub size: u64,
    /// SHA-256 when the hub published one (LFS files).
    pub sha256: Option<String>,
    /// It was already in the cache: nothing was downloaded.
    pub reused: bool,
}

/// A client for one hub endpoint and one cache folder.
pub struct Hub {
    config: HubConfig,
    agent: ureq::Agent,
    layout: CacheLayout,
}

pub(crate) fn check_repo_id(repo: &str) -> Result<(), HubError> {
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let mut parts = repo.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) if ok(a) && ok(b) => Ok(()),
        _ => Err(HubError::InvalidRepoId(repo.to_string())),
    }
}

/// Percent-encodes a path, keeping `/` when `keep_slash`.
pub(crate) fn encode_path(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~".contains(c) || (keep_slash && c == '/') {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(config.connect_timeout)
            .timeout_read(config.read_timeout)
            .timeout_write(config.read_timeout)
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build();
        let layout = CacheLayout::new(&config.cache_dir);
        Self {
            config,
            agent,
            layout,
        }
    }

    /// From [`HubConfig::from_env`].
    pub fn from_env() -> Self {
        Self::new(HubConfig::from_env())
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    /// The repository's files at `revision` (`GET /api/models/REPO/revision/REV?blobs=true`).
    pub fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo, HubError> {
        check_repo_id(repo)?;
        if self.config.offline {
            return Err(HubError::NotCached {
                what: format!("the file list of {repo}@{revision}"),
                cache: self.config.cache_dir.clone(),
            });
        }
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.config.endpoint,
            repo,
            encode_path(revision, false)
        );
        let body = transfer::get_small(self, &url, repo, &format!("{repo}@{revision}"))?;
        let info: RepoInfo =
            serde_json::from_slice(&body).map_err(|e| HubError::InvalidResponse {
                url: url.clone(),
                message: e.to_string(),
            })?;
        if info.sha.len() != 40 || !info.sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(HubError::InvalidResponse {
                url,
                message: format!("`sha` {:?} is not a commit id", info.sha),
            });
        }
        Ok(info)
    }

    /// The cached copy of `file`, if the cache has it at `revision` (no network).
    pub fn cached(&self, repo: &str, revision: &str, file: &str) -> Option<CachedFile> {
        self.layout.find(repo, revision, file)
    }

    /// Downloads one file (or finds it in the cache) and returns its verified path.
    pub fn download(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        listener: &mut dyn FnMut(&DownloadProgress),
        cancel: &AtomicBool,
    ) -> Result<CachedFile, HubError> {
        let mut files = self.download_files(repo, revision, &[file], listener, cancel)?;
        Ok(files.remove(0))
    }

    /// Downloads several files of one repository at one revision (one metadata request).
    pub fn download_files(
        &self,
        repo: &str,
        revision: &str,
        files: &[&str],
        listener: &mut dyn FnMut(&DownloadProgress),
        cancel: &AtomicBool,
    ) -> Result<Vec<CachedFile>, HubError> {
        check_repo_id(repo)?;
        if self.config.offline {
            return files
                .iter()
                .map(|f| {
                    self.layout
                        .find(repo, revision, f)
                        .ok_or_else(|| HubError::NotCached {
                            what: format!("{repo}/{f}@{revision}"),
                            cache: self.config.cache_dir.clone(),
                        })
                })
                .collect();
        }
        let info = match self.repo_info(repo, revision) {
            Ok(info) => info,
            // Unreachable hub: what the cache already has is still good.
            Err(e @ (HubError::Network { .. } | HubError::Unavailable { .. })) => {
                let cached: Option<Vec<CachedFile>> = files
                    .iter()
                    .map(|f| self.layout.find(repo, revision, f))
                    .collect();
                return cached.ok_or(e);
            }
            Err(e) => return Err(e),
        };
        files
            .iter()
            .map(|f| self.download_with_info(&info, repo, revision, f, listener, cancel))
            .collect()
    }

    /// Downloads `file` given the repository listing `info` from [`Hub::repo_info`].
    pub fn download_with_info(
        &self,
        info: &RepoInfo,
        repo: &str,
        revision: &str,
        file: &str,
        listener: &mut dyn FnMut(&DownloadProgress),
        cancel: &AtomicBool,
    ) -> Result<CachedFile, HubError> {
        let sib = info.sibling(file).ok_or_else(|| HubError::NotFound {
            what: format!("{file} in {repo}@{revision}"),
        })?;
        let commit = info.sha.as_str();
        let size = sib.lfs.as_ref().map(|l| l.size).or(sib.size);
        let sha256 = sib.lfs.as_ref().map(|l| l.sha256.to_ascii_lowercase());
        let blob_name = match (&sha256, &sib.blob_id) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) => b.to_ascii_lowercase(),
            (None, None) => {
                return Err(HubError::InvalidResponse {
                    url: format!("{}/api/models/{repo}", self.config.endpoint),
                    message: format!("no blob id or LFS hash listed for {file}"),
                })
            }
        };
        if !blob_name.chars().all(|c| c.is_ascii_hexdigit()) || blob_name.len() < 40 {
            return Err(HubError::InvalidResponse {
                url: format!("{}/api/models/{repo}", self.config.endpoint),
                message: format!("`{blob_name}` is not a content hash"),
            });
        }
        // Already in the cache at this commit, or the same content under another commit.
        if let Some(found) = self.layout.find(repo, commit, file) {
            if size.is_none_or(|s| s == found.size) {
                self.layout.write_ref(repo, revision, commit)?;
                return Ok(found);
            }
        }
        let blob = self.layout.blob_path(repo, &blob_name);
        if let Some(parent) = blob.parent() {
            std::fs::create_dir_all(parent).map_err(|source| HubError::Io {
                action: "cannot create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let reused = std::fs::metadata(&blob).is_ok_and(|m| size.is_none_or(|s| s == m.len()));
        if !reused {
            let expected = transfer::Expected {
                size,
                sha256: sha256.clone(),
                git_sha1: if sha256.is_none() {
                    Some(blob_name.clone())
                } else {
                    None
                },
            };
            let url = format!(
                "{}/{}/resolve/{}/{}",
                self.config.endpoint,
                repo,
                commit,
                encode_path(file, true)
            );
            let label = transfer::Label { repo, file };
            transfer::download_blob(self, &url, &expected, &blob, &label, listener, cancel)?;
        }
        let path = self.layout.link_snapshot(repo, commit, file, &blob_name)?;
        self.layout.write_ref(repo, revision, commit)?;
        let len = std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
        if reused {
            listener(&DownloadProgress {
                repo: repo.to_string(),
                file: file.to_string(),
                downloaded: len,
                total: Some(len),
                resumed_from: len,
                bytes_per_second: 0.0,
                eta: Some(Duration::ZERO),
                retrying: 0,
                done: true,
            });
        }
        Ok(CachedFile {
            path,
            blob,
            commit: commit.to_string(),
            size: len,
            sha256,
            reused,
        })
    }

    /// Path of the partial download of `file` if one is waiting to be resumed.
    pub fn partial(&self, info: &RepoInfo, repo: &str, file: &str) -> Option<PathBuf> {
        let sib = info.sibling(file)?;
        let name = sib
            .lfs
            .as_ref()
            .map(|l| l.sha256.clone())
            .or_else(|| sib.blob_id.clone())?;
        let p = self.layout.incomplete_path(repo, &name);
        p.exists().then_some(p)
    }

    /// Deletes the partial download of `file`, if any. Returns whether one was removed.
    pub fn discard_partial(
        &self,
        info: &RepoInfo,
        repo: &str,
        file: &str,
    ) -> Result<bool, HubError> {
        match self.partial(info, repo, file) {
            Some(p) => std::fs::remove_file(&p)
                .map(|_| true)
                .map_err(|source| HubError::Io {
                    action: "cannot delete",
                    path: p,
                    source,
                }),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
    }

    #[test]
    fn repo_ids_and_paths() {
        assert!(check_repo_id("Qwen/Qwen2.5-0.5B-Instruct").is_ok());
        assert!(check_repo_id("Qwen").is_err());
        assert!(check_repo_id("a/b/c").is_err());
        assert!(check_repo_id("../etc").is_err());
        assert_eq!(
            encode_path("sub dir/a+b.gguf", true),
            "sub%20dir/a%2Bb.gguf"
        );
        assert_eq!(encode_path("refs/pr/1", false), "refs%2Fpr%2F1");
    }
}
