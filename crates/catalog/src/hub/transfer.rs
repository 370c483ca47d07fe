//! The HTTP side of a download: requests with manual redirects (the token goes only to the hub's
//! own host), Range resume, retry with backoff, streaming to disk with hashing, and verification.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{is_disk_full, DownloadProgress, Hub, HubError};

/// What the finished file must be.
pub(crate) struct Expected {
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Git blob id, for small files stored without LFS.
    pub git_sha1: Option<String>,
}

pub(crate) struct Label<'a> {
    pub repo: &'a str,
    pub file: &'a str,
}

const MAX_REDIRECTS: usize = 10;
const BUF: usize = 256 * 1024;
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Outcome of one failed attempt.
enum Failure {
    /// Worth another try after a delay (`after` from `Retry-After`).
    Transient {
        error: HubError,
        after: Option<Duration>,
    },
    Fatal(HubError),
}

fn join_url(base: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(base).map_err(|e| e.to_string())?;
    base.join(location)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    resp.header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends GET, following redirects by hand; returns the final response (any status).
fn send(
    hub: &Hub,
    url: &str,
    range_from: u64,
    repo: &str,
) -> Result<(ureq::Response, String), Failure> {
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = hub.agent.get(&current);
        if range_from > 0 {
            req = req.set("Range", &format!("bytes={range_from}-"));
        }
        if let Some(token) = &hub.config.token {
            if same_origin(&current, &hub.config.endpoint) {
                req = req.set("Authorization", &format!("Bearer {token}"));
            }
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err(Failure::Transient {
                    error: HubError::Network {
                        url: current,
                        message: t.to_string(),
                    },
                    after: None,
                })
            }
        };
        let status = resp.status();
        if (300..400).contains(&status) && status != 304 {
            let loc = resp.header("Location").ok_or_else(|| {
                Failure::Fatal(HubError::InvalidResponse {
                    url: current.clone(),
                    message: format!("HTTP {status} without a Location"),
                })
            })?;
            current = join_url(&current, loc).map_err(|message| {
                Failure::Fatal(HubError::InvalidResponse {
                    url: current.clone(),
                    message,
                })
            })?;
            continue;
        }
        return match status {
            200..=299 | 416 => Ok((resp, current)),
            401 | 403 => Err(Failure::Fatal(HubError::Unauthorized {
                repo: repo.to_string(),
                status,
            })),
            404 => Err(Failure::Fatal(HubError::NotFound { what: current })),
            408 | 429 | 500..=599 => Err(Failure::Transient {
                after: retry_after(&resp),
                error: HubError::Unavailable {
                    url: current,
                    status,
                },
            }),
            _ => Err(Failure::Fatal(HubError::UnexpectedStatus {
                url: current,
                status,
            })),
        };
    }
    Err(Failure::Fatal(HubError::InvalidResponse {
        url: url.to_string(),
        message: "too many redirects".into(),
    }))
}

/// Sleeps `d`, waking early to honour `cancel`. Returns false when cancelled.
fn sleep_unless_cancelled(d: Duration, cancel: Option<&AtomicBool>) -> bool {
    let end = Instant::now() + d;
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// GET of a small JSON document, retried like downloads.
pub(crate) fn get_small(hub: &Hub, url: &str, repo: &str, what: &str) -> Result<Vec<u8>, HubError> {
    let mut failures = 0;
    loop {
        let result = send(hub, url, 0, repo).and_then(|(resp, final_url)| {
            let mut body = Vec::new();
            resp.into_reader()
                .take(64 * 1024 * 1024)
                .read_to_end(&mut body)
                .map(|_| body)
                .map_err(|e| Failure::Transient {
                    error: HubError::Network {
                        url: final_url,
                        message: e.to_string(),
                    },
                    after: None,
                })
        });
        match result {
            Ok(body) => return Ok(body),
            Err(Failure::Fatal(HubError::NotFound { .. })) => {
                return Err(HubError::NotFound {
                    what: what.to_string(),
                })
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient { error, after }) => {
                failures += 1;
                if failures > hub.config.retry.max_retries {
                    return Err(error);
                }
                let delay = after
                    .unwrap_or_else(|| hub.config.retry.delay(failures))
                    .min(hub.config.retry.max_delay);
                sleep_unless_cancelled(delay, None);
            }
        }
    }
}

/// Transfer rate over the last few seconds.
struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    fn new(bytes: u64) -> Self {
        let mut samples = VecDeque::new();
        samples.push_back((Instant::now(), bytes));
        Self { samples }
    }

    fn add(&mut self, bytes: u64) {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(5)
        {
            self.samples.pop_front();
        }
    }

    fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1.saturating_sub(a.1)) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The partial file, its running hashes, and the progress reporting.
struct Partial<'a> {
    path: PathBuf,
    file: File,
    writer: Box<dyn Write + Send>,
    len: u64,
    sha256: Sha256,
    sha1: Option<Sha1>,
    expected: &'a Expected,
    label: &'a Label<'a>,
    resumed_from: u64,
    meter: RateMeter,
    last_report: Instant,
    retrying: u32,
}

fn git_blob_header(size: u64) -> Vec<u8> {
    format!("blob {size}\0").into_bytes()
}

impl<'a> Partial<'a> {
    fn open(
        hub: &Hub,
        path: &Path,
        expected: &'a Expected,
        label: &'a Label<'a>,
    ) -> Result<Self, HubError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|source| HubError::Io {
                action: "cannot open",
                path: path.to_path_buf(),
                source,
            })?;
        let writer = make_writer(hub, &file, path)?;
        let mut p = Self {
            path: path.to_path_buf(),
            file,
            writer,
            len: 0,
            sha256: Sha256::new(),
            sha1: None,
            expected,
            label,
            resumed_from: 0,
            meter: RateMeter::new(0),
            last_report: Instant::now() - REPORT_EVERY,
            retrying: 0,
        };
        p.reset_hashes();
        // Hash what a previous attempt or run left, so the final check covers the whole file.
        let have = p.file.metadata().map(|m| m.len()).unwrap_or(0);
        if expected.size.is_some_and(|s| have > s) {
            p.truncate()?;
        } else if have > 0 {
            let mut f = File::open(path).map_err(|source| HubError::Io {
                action: "cannot read",
                path: path.to_path_buf(),
                source,
            })?;
            let mut buf = vec![0u8; BUF];
            loop {
                let n = f.read(&mut buf).map_err(|source| HubError::Io {
                    action: "cannot read",
                    path: path.to_path_buf(),
                    source,
                })?;
                if n == 0 {
                    break;
                }
                p.hash(&buf[..n]);
                p.len += n as u64;
            }
        }
        p.resumed_from = p.len;
        p.meter = RateMeter::new(p.len);
        Ok(p)
    }

    fn reset_hashes(&mut self) {
        self.sha256 = Sha256::new();
        self.sha1 = self.expected.git_sha1.as_ref().and_then(|_| {
            self.expected.size.map(|s| {
                let mut h = Sha1::new();
                h.update(git_blob_header(s));
                h
            })
        });
    }

    fn hash(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = self.sha1.as_mut() {
            h.update(data);
        }
    }

    fn truncate(&mut self) -> Result<(), HubError> {
        self.writer.flush().ok();
        self.file.set_len(0).map_err(|source| HubError::Io {
            action: "cannot truncate",
            path: self.path.clone(),
            source,
        })?;
        self.len = 0;
        self.resumed_from = 0;
        self.reset_hashes();
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), HubError> {
        if let Err(e) = self.writer.write_all(data) {
            return Err(if is_disk_full(&e) {
                HubError::DiskFull {
                    path: self.path.clone(),
                }
            } else {
                HubError::Io {
                    action: "cannot write",
                    path: self.path.clone(),
                    source: e,
                }
            });
        }
        self.hash(data);
        self.len += data.len() as u64;
        self.meter.add(self.len);
        Ok(())
    }

    fn report(&mut self, listener: &mut dyn FnMut(&DownloadProgress), done: bool) {
        if !done && self.last_report.elapsed() < REPORT_EVERY {
            return;
        }
        self.last_report = Instant::now();
        let rate = self.meter.rate();
        let eta = match (self.expected.size, rate > 0.0) {
            (Some(total), true) => Some(Duration::from_secs_f64(
                total.saturating_sub(self.len) as f64 / rate,
            )),
            (Some(total), false) if total == self.len => Some(Duration::ZERO),
            _ => None,
        };
        listener(&DownloadProgress {
            repo: self.label.repo.to_string(),
            file: self.label.file.to_string(),
            downloaded: self.len,
            total: self.expected.size,
            resumed_from: self.resumed_from,
            bytes_per_second: rate,
            eta,
            retrying: self.retrying,
            done,
        });
    }

    fn complete(&self) -> bool {
        self.expected.size == Some(self.len)
    }
}

fn make_writer(hub: &Hub, file: &File, path: &Path) -> Result<Box<dyn Write + Send>, HubError> {
    let clone = file.try_clone().map_err(|source| HubError::Io {
        action: "cannot open",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match &hub.config.write_wrapper {
        Some(wrap) => wrap(clone),
        None => Box::new(clone),
    })
}

fn content_range_start(resp: &ureq::Response) -> Option<u64> {
    // "bytes START-END/TOTAL"
    let v = resp.header("Content-Range")?;
    let rest = v.trim().strip_prefix("bytes")?.trim();
    rest.split('-').next()?.trim().parse().ok()
}

fn strip_etag(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// One request: from the current length to the end, or until the connection fails.
fn attempt(
    hub: &Hub,
    url: &str,
    part: &mut Partial<'_>,
    listener: &mut dyn FnMut(&DownloadProgress),
    cancel: &AtomicBool,
) -> Result<(), Failure> {
    let (resp, final_url) = send(hub, url, part.len, part.label.repo)?;
    let status = resp.status();
    // The hub says which content the resolve URL stands for; it must be what we verify against.
    if let (Some(linked), Some(expected)) =
        (resp.header("X-Linked-Etag"), part.expected.sha256.as_ref())
    {
        let linked = strip_etag(linked);
        if linked.len() == 64 && &linked != expected {
            return Err(Failure::Fatal(HubError::ChangedUpstream {
                file: part.label.file.to_string(),
                expected: expected.clone(),
                actual: linked,
            }));
        }
    }
    match status {
        416 => {
            // Nothing left to send: either we have it all, or our partial file is wrong.
            if part.complete() {
                return Ok(());
            }
            part.truncate().map_err(Failure::Fatal)?;
            return Err(Failure::Transient {
                error: HubError::InvalidResponse {
                    url: final_url,
                    message: "range not satisfiable".into(),
                },
                after: Some(Duration::ZERO),
            });
        }
        206 => {
            if content_range_start(&resp) != Some(part.len) {
                part.truncate().map_err(Failure::Fatal)?;
                return Err(Failure::Transient {
                    error: HubError::InvalidResponse {
                        url: final_url,
                        message: "the server resumed at the wrong offset".into(),
                    },
                    after: Some(Duration::ZERO),
                });
            }
        }
        _ => {
            // A full answer: start over from byte 0.
            if part.len > 0 {
                part.truncate().map_err(Failure::Fatal)?;
            }
        }
    }
    let start_len = part.len;
    let body_len: Option<u64> = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    if let (Some(total), Some(body)) = (part.expected.size, body_len) {
        if part.len + body != total {
            return Err(Failure::Fatal(HubError::InvalidResponse {
                url: final_url,
                message: format!(
                    "the server sends {body} bytes from offset {}, but the file has {total}",
                    part.len
                ),
            }));
        }
    }
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; BUF];
    loop {
        if cancel.load(Ordering::Relaxed) {
            part.writer.flush().ok();
            return Err(Failure::Fatal(HubError::Cancelled {
                file: part.label.file.to_string(),
                partial: part.path.clone(),
                bytes: part.len,
            }));
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                part.writer.flush().ok();
                return Err(Failure::Transient {
                    error: HubError::Network {
                        url: final_url,
                        message: e.to_string(),
                    },
                    after: if part.len > start_len {
                        Some(Duration::ZERO)
                    } else {
                        None
                    },
                });
            }
        };
        if n == 0 {
            break;
        }
        if let Some(total) = part.expected.size {
            if part.len + n as u64 > total {
                return Err(Failure::Fatal(HubError::InvalidResponse {
                    url: final_url,
                    message: format!("the server sent more than the {total} bytes the file has"),
                }));
            }
        }
        part.write(&buf[..n]).map_err(Failure::Fatal)?;
        part.report(listener, false);
    }
    part.writer.flush().map_err(|e| {
        Failure::Fatal(if is_disk_full(&e) {
            HubError::DiskFull {
                path: part.path.clone(),
            }
        } else {
            HubError::Io {
                action: "cannot write",
                path: part.path.clone(),
                source: e,
            }
        })
    })?;
    match part.expected.size {
        Some(total) if part.len < total => Err(Failure::Transient {
            error: HubError::Network {
                url: final_url,
                message: format!("the connection closed after {} of {total} bytes", part.len),
            },
            // Progress was made: resume at once.
            after: if part.len > start_len {
                Some(Duration::ZERO)
            } else {
                None
            },
        }),
        _ => Ok(()),
    }
}

/// Downloads `url` into `blob` (via `blob.incomplete`), verified against `expected`.
pub(crate) fn download_blob(
    hub: &Hub,
    url: &str,
    expected: &Expected,
    blob: &Path,
    label: &Label<'_>,
    listener: &mut dyn FnMut(&DownloadProgress),
    cancel: &AtomicBool,
) -> Result<(), HubError> {
    let incomplete = {
        let mut name = blob
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".incomplete");
        blob.with_file_name(name)
    };
    let mut part = Partial::open(hub, &incomplete, expected, label)?;

    if let Some(total) = expected.size {
        let needed = total.saturating_sub(part.len);
        let dir = incomplete.parent().unwrap_or(Path::new("."));
        let available = fs4::available_space(dir).map_err(|source| HubError::Io {
            action: "cannot measure free space in",
            path: dir.to_path_buf(),
            source,
        })?;
        if available < needed {
            return Err(HubError::InsufficientDisk {
                path: dir.to_path_buf(),
                needed,
                available,
            });
        }
    }
    part.report(listener, false);

    let mut failures = 0u32;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(HubError::Cancelled {
                file: label.file.to_string(),
                partial: incomplete.clone(),
                bytes: part.len,
            });
        }
        let before = part.len;
        match attempt(hub, url, &mut part, listener, cancel) {
            Ok(()) => break,
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient { error, after }) => {
                if part.len > before {
                    failures = 0;
                }
                failures += 1;
                if failures > hub.config.retry.max_retries {
                    return Err(error);
                }
                part.retrying = failures;
                part.last_report = Instant::now() - REPORT_EVERY;
                part.report(listener, false);
                let delay = after
                    .unwrap_or_else(|| hub.config.retry.delay(failures))
                    .min(hub.config.retry.max_delay);
                if !sleep_unless_cancelled(delay, Some(cancel)) {
                    return Err(HubError::Cancelled {
                        file: label.file.to_string(),
                        partial: incomplete.clone(),
                        bytes: part.len,
                    });
                }
                part.retrying = 0;
            }
        }
    }
    part.file.sync_all().map_err(|source| HubError::Io {
        action: "cannot flush",
        path: incomplete.clone(),
        source,
    })?;

    let verify_fail = |expected: String, actual: String| {
        let _ = std::fs::remove_file(&incomplete);
        Err(HubError::ChecksumMismatch {
            file: label.file.to_string(),
            expected,
            actual,
        })
    };
    if let Some(total) = expected.size {
        if part.len != total {
            return verify_fail(format!("{total} bytes"), format!("{} bytes", part.len));
        }
    }
    let sha256 = hex(&part.sha256.clone().finalize());
    if let Some(want) = &expected.sha256 {
        if &sha256 != want {
            return verify_fail(format!("sha256 {want}"), format!("sha256 {sha256}"));
        }
    }
    if let (Some(want), Some(h)) = (&expected.git_sha1, part.sha1.clone()) {
        let got = hex(&h.finalize());
        if &got != want {
            return verify_fail(format!("git blob {want}"), format!("git blob {got}"));
        }
    }
    std::fs::rename(&incomplete, blob).map_err(|source| HubError::Io {
        action: "cannot move into place",
        path: blob.to_path_buf(),
        source,
    })?;
    part.report(listener, true);
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let mut h = Sha1::new();
        h.update(git_blob_header(6));
        h.update(b"hello\n");
        assert_eq!(
            hex(&h.finalize()),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn redirects_resolve_relative_locations() {
        assert_eq!(
            join_url(
                "http://127.0.0.1:9/org/m/resolve/main/a.gguf",
                "/cdn/abc?x=1"
            )
            .unwrap(),
            "http://127.0.0.1:9/cdn/abc?x=1"
        );
        assert!(same_origin("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"));
        assert!(!same_origin("http://127.0.0.1:9/a", "http://127.0.0.2:9/a"));
    }
}
