//! Downloads against a local hub on 127.0.0.1 that serves the real test models, with faults:
//! a connection dropped at 50%, a restart mid-download, one corrupted byte, 404s, 429/503 then
//! success, repeated 5xx, a slow trickle then cancel, a full disk, a gated repository, reuse of
//! the Hugging Face cache and offline mode.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hearth_catalog::hub::{CacheLayout, DownloadProgress};
use hearth_catalog::{Hub, HubConfig, HubError, RetryPolicy};
use support::hub_server::{file_sha256, Faults, HubServer, Repo, ServedFile};

const COMMIT: &str = "5f0c1e3b7d2a4c6e8f9a0b1c2d3e4f5a6b7c8d9e";
const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF";
const GGUF: &str = "smollm2-135m-instruct-q4_1.gguf";
const CONFIG_JSON: &[u8] = br#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 576}"#;

fn test_models() -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hearth/test-models")
        });
    assert!(
        dir.join(GGUF).is_file(),
        "test models not found in {}: run scripts/fetch-test-models",
        dir.display()
    );
    dir
}

fn smollm_repo() -> Repo {
    Repo {
        id: REPO.into(),
        commit: COMMIT.into(),
        files: vec![
            ServedFile::lfs(GGUF, &test_models().join(GGUF)),
            ServedFile::small("config.json", CONFIG_JSON),
        ],
        token: None,
    }
}

fn server() -> HubServer {
    HubServer::start(vec![smollm_repo()])
}

fn hub(server: &HubServer, cache: &Path) -> Hub {
    let mut cfg = HubConfig::new(&server.url, cache);
    cfg.retry = RetryPolicy {
        max_retries: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    };
    cfg.read_timeout = Duration::from_secs(10);
    Hub::new(cfg)
}

fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

fn content_requests(server: &HubServer) -> Vec<support::hub_server::Logged> {
    server
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/cdn-lfs/"))
        .collect()
}

#[test]
fn downloads_verify_and_land_in_the_hf_cache_layout() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub(&server, cache.path());
    let mut events: Vec<DownloadProgress> = Vec::new();
    let files = hub
        .download_files(
            REPO,
            "main",
            &[GGUF, "config.json"],
            &mut |p| events.push(p.clone()),
            &no_cancel(),
        )
        .unwrap();
    let src = test_models().join(GGUF);
    let size = std::fs::metadata(&src).unwrap().len();
    let sha = file_sha256(&src);

    let gguf = &files[0];
    assert!(!gguf.reused);
    assert_eq!(gguf.size, size);
    assert_eq!(gguf.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(
        file_sha256(&gguf.path),
        sha,
        "the file on disk is the served file"
    );
    // huggingface_hub's layout.
    let repo_dir = cache
        .path()
        .join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF");
    assert_eq!(
        gguf.path,
        repo_dir.join("snapshots").join(COMMIT).join(GGUF)
    );
    assert!(std::fs::symlink_metadata(&gguf.path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(gguf.blob, repo_dir.join("blobs").join(&sha));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    assert_eq!(
        std::fs::read(&files[1].path).unwrap(),
        CONFIG_JSON,
        "small files are verified by git blob id"
    );

    // Progress: monotonic bytes, a total, a rate, and a final `done`.
    let gg: Vec<_> = events.iter().filter(|e| e.file == GGUF).collect();
    assert!(gg.len() >= 3, "{} progress events", gg.len());
    assert!(gg.windows(2).all(|w| w[0].downloaded <= w[1].downloaded));
    assert!(gg.iter().all(|e| e.total == Some(size)));
    assert!(gg
        .iter()
        .any(|e| e.bytes_per_second > 0.0 && e.eta.is_some()));
    let last = gg.last().unwrap();
    assert!(last.done && last.downloaded == size);

    // A second download reuses the cache: only the metadata request goes out.
    server.clear_log();
    let again = hub
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap();
    assert!(again.reused);
    assert!(content_requests(&server).is_empty());
    assert!(server.log().iter().all(|l| !l.path.contains("/resolve/")));

    // Offline mode never touches the network and finds the same file.
    server.clear_log();
    let mut cfg = HubConfig::new("http://127.0.0.1:9", cache.path());
    cfg.offline = true;
    let offline = Hub::new(cfg);
    let found = offline
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap();
    assert_eq!(found.path, gguf.path);
    assert!(server.log().is_empty());
    let missing = offline.download(REPO, "main", "other.gguf", &mut |_| {}, &no_cancel());
    assert!(
        matches!(missing, Err(HubError::NotCached { .. })),
        "{missing:?}"
    );

    // An unreachable hub falls back to what the cache has.
    let unreachable = Hub::new(HubConfig {
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..HubConfig::new("http://127.0.0.1:9", cache.path())
    });
    assert!(
        unreachable
            .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
            .unwrap()
            .reused
    );
}

#[test]
fn a_connection_dropped_at_half_resumes_with_range_and_verifies() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(test_models().join(GGUF)).unwrap().len();
    server.set_faults(Faults {
        drop_after_bytes: Some(size / 2),
        ..Faults::default()
    });
    let mut retried = false;
    let got = hub(&server, cache.path())
        .download(
            REPO,
            "main",
            GGUF,
            &mut |p| retried |= p.retrying > 0,
            &no_cancel(),
        )
        .unwrap();
    assert_eq!(
        file_sha256(&got.path),
        file_sha256(&test_models().join(GGUF))
    );
    let reqs = content_requests(&server);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={}-", size / 2).as_str())
    );
    assert_eq!(reqs[1].status, 206);
    assert!(retried, "the listener heard about the retry");
}

#[test]
fn a_download_interrupted_then_restarted_resumes_from_the_partial_file() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(test_models().join(GGUF)).unwrap().len();
    let cut = size / 3;
    server.set_faults(Faults {
        drop_after_bytes: Some(cut),
        ..Faults::default()
    });
    // First "run" gives up at once (no retries), like an app that is closed mid-download.
    let first = Hub::new(HubConfig {
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..HubConfig::new(&server.url, cache.path())
    });
    let err = first
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");
    let layout = CacheLayout::new(cache.path());
    let partial = layout.incomplete_path(REPO, &file_sha256(&test_models().join(GGUF)));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut);
    drop(first);

    // Second "run": a new client finds the partial file and asks only for the rest.
    server.clear_log();
    let mut resumed_from = 0;
    let got = hub(&server, cache.path())
        .download(
            REPO,
            "main",
            GGUF,
            &mut |p| resumed_from = p.resumed_from,
            &no_cancel(),
        )
        .unwrap();
    assert_eq!(resumed_from, cut);
    assert_eq!(
        file_sha256(&got.path),
        file_sha256(&test_models().join(GGUF))
    );
    let reqs = content_requests(&server);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert!(!partial.exists());
}

#[test]
fn a_server_that_ignores_range_restarts_cleanly() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    let size = std::fs::metadata(test_models().join(GGUF)).unwrap().len();
    server.set_faults(Faults {
        drop_after_bytes: Some(size / 4),
        ignore_range: true,
        ..Faults::default()
    });
    let got = hub(&server, cache.path())
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap();
    assert_eq!(
        file_sha256(&got.path),
        file_sha256(&test_models().join(GGUF))
    );
    let reqs = content_requests(&server);
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].status, 200,
        "answered in full, so the client started over"
    );
}

#[test]
fn one_corrupted_byte_fails_verification_and_installs_nothing() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    server.set_faults(Faults {
        corrupt_offset: Some(12_345_678),
        ..Faults::default()
    });
    let hub = hub(&server, cache.path());
    let err = hub
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap_err();
    match &err {
        HubError::ChecksumMismatch {
            file,
            expected,
            actual,
        } => {
            assert_eq!(file, GGUF);
            assert!(expected.contains(&file_sha256(&test_models().join(GGUF))));
            assert_ne!(expected, actual);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(err.to_string().contains("failed verification"));
    let repo_dir = cache
        .path()
        .join("models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF");
    let blobs: Vec<_> = std::fs::read_dir(repo_dir.join("blobs")).unwrap().collect();
    assert!(
        blobs.is_empty(),
        "neither the blob nor a partial file is left"
    );
    assert!(!repo_dir.join("snapshots").join(COMMIT).join(GGUF).exists());
    assert!(hub.cached(REPO, "main", GGUF).is_none());
}

#[test]
fn not_found_is_a_clear_error() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub(&server, cache.path());
    // A file the repository does not list.
    let e = hub
        .download(REPO, "main", "missing.gguf", &mut |_| {}, &no_cancel())
        .unwrap_err();
    assert!(matches!(e, HubError::NotFound { .. }));
    assert!(e.to_string().contains("missing.gguf"), "{e}");
    // A repository the hub does not have.
    let e = hub
        .download("nobody/nothing", "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap_err();
    assert!(
        matches!(e, HubError::NotFound { .. }) && e.to_string().contains("nobody/nothing"),
        "{e}"
    );
    // A revision that does not exist.
    let e = hub.repo_info(REPO, "v9").unwrap_err();
    assert!(matches!(e, HubError::NotFound { .. }), "{e}");
    // A listed file whose resolve URL answers 404 is not retried.
    server.set_faults(Faults {
        statuses: vec![404],
        ..Faults::default()
    });
    server.clear_log();
    let e = hub
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap_err();
    assert!(matches!(e, HubError::NotFound { .. }), "{e}");
    assert_eq!(server.log().iter().filter(|l| l.status == 404).count(), 1);
    // Not a repository id at all.
    assert!(matches!(
        hub.repo_info("no-slash", "main"),
        Err(HubError::InvalidRepoId(_))
    ));
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    server.set_faults(Faults {
        statuses: vec![429, 503, 429],
        retry_after: Some(1),
        ..Faults::default()
    });
    let t = Instant::now();
    let got = hub(&server, cache.path())
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "Retry-After: 1 was honoured three times"
    );
    assert_eq!(
        file_sha256(&got.path),
        file_sha256(&test_models().join(GGUF))
    );
    let statuses: Vec<u16> = server
        .log()
        .iter()
        .filter(|l| !l.path.starts_with("/api/"))
        .map(|l| l.status)
        .collect();
    assert_eq!(&statuses[..3], &[429, 503, 429]);
    assert!(statuses.contains(&200));
}

#[test]
fn persistent_server_errors_give_up_with_the_status() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    server.set_faults(Faults {
        statuses: vec![503; 20],
        ..Faults::default()
    });
    let e = hub(&server, cache.path())
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap_err();
    assert!(
        matches!(e, HubError::Unavailable { status: 503, .. }),
        "{e}"
    );
    // 1 try + 4 retries.
    assert_eq!(server.log().iter().filter(|l| l.status == 503).count(), 5);
}

#[test]
fn a_slow_trickle_can_be_cancelled_and_the_partial_file_resumes_later() {
    let server = server();
    let cache = tempfile::tempdir().unwrap();
    server.set_faults(Faults {
        trickle: Some((16 * 1024, Duration::from_millis(20))),
        ..Faults::default()
    });
    let hub = hub(&server, cache.path());
    let cancel = AtomicBool::new(false);
    let t = Instant::now();
    let err = hub
        .download(
            REPO,
            "main",
            GGUF,
            &mut |p| {
                if p.downloaded >= 256 * 1024 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "cancel is prompt");
    let (partial, bytes) = match err {
        HubError::Cancelled { partial, bytes, .. } => (partial, bytes),
        other => panic!("expected Cancelled, got {other}"),
    };
    assert!(bytes >= 256 * 1024);
    assert_eq!(
        std::fs::metadata(&partial).unwrap().len(),
        bytes,
        "documented: the partial file is kept"
    );
    let info = hub.repo_info(REPO, "main").unwrap();
    assert_eq!(
        hub.partial(&info, REPO, GGUF).as_deref(),
        Some(partial.as_path())
    );

    // Later, at full speed, it resumes where it stopped.
    server.set_faults(Faults::default());
    server.clear_log();
    let got = hub
        .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
        .unwrap();
    assert_eq!(
        file_sha256(&got.path),
        file_sha256(&test_models().join(GGUF))
    );
    assert_eq!(
        content_requests(&server)[0].range.as_deref(),
        Some(format!("bytes={bytes}-").as_str())
    );

    // And a partial file can be discarded on purpose.
    server.set_faults(Faults {
        trickle: Some((16 * 1024, Duration::from_millis(20))),
        ..Faults::default()
    });
    let cache2 = tempfile::tempdir().unwrap();
    let hub2 = self::hub(&server, cache2.path());
    let cancel = AtomicBool::new(false);
    let _ = hub2.download(
        REPO,
        "main",
        GGUF,
        &mut |p| {
            if p.downloaded > 0 {
                cancel.store(true, Ordering::Relaxed)
            }
        },
        &cancel,
    );
    assert!(hub2.discard_partial(&info, REPO, GGUF).unwrap());
    assert!(hub2.partial(&info, REPO, GGUF).is_none());
}

#[test]
fn a_gated_repository_needs_a_token() {
    let mut repo = smollm_repo();
    repo.id = "meta-llama/Gated-Model".into();
    repo.token = Some("hf_test_token".into());
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let e = hub(&server, cache.path())
        .download(
            "meta-llama/Gated-Model",
            "main",
            "config.json",
            &mut |_| {},
            &no_cancel(),
        )
        .unwrap_err();
    assert!(
        matches!(e, HubError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("token"));
    let mut cfg = HubConfig::new(&server.url, cache.path());
    cfg.token = Some("hf_test_token".into());
    let got = Hub::new(cfg)
        .download(
            "meta-llama/Gated-Model",
            "main",
            "config.json",
            &mut |_| {},
            &no_cancel(),
        )
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), CONFIG_JSON);
    assert!(server
        .log()
        .iter()
        .any(|l| l.authorization.as_deref() == Some("Bearer hf_test_token")));
}

#[test]
fn endpoint_token_offline_and_cache_come_from_the_environment() {
    // The only test that reads these variables.
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:8999/");
    std::env::set_var("HF_TOKEN", "hf_from_env");
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::env::set_var("HF_HUB_CACHE", "/tmp/hearth-hf-cache-test");
    let cfg = HubConfig::from_env();
    assert_eq!(cfg.endpoint, "http://127.0.0.1:8999");
    assert_eq!(cfg.token.as_deref(), Some("hf_from_env"));
    assert!(cfg.offline);
    assert_eq!(cfg.cache_dir, PathBuf::from("/tmp/hearth-hf-cache-test"));
    assert!(
        !format!("{cfg:?}").contains("hf_from_env"),
        "the token is not printed"
    );
    for v in ["HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"] {
        std::env::remove_var(v);
    }
}

/// A 20 MiB tmpfs, unmounted on drop; None where mounting is not allowed.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=20m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes up to `bytes` to `path`, stopping without an error where the disk is full: how much
/// of the download is on disk when this runs depends on timing, and a full disk is the aim.
fn fill(path: &std::path::Path, bytes: usize) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        match f.write_all(&chunk[..n]) {
            Ok(()) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Written data still in the page cache may only meet the full disk here.
    match f.sync_all() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {}
        Err(e) => panic!("filling the disk: {e}"),
    }
}

#[test]
fn a_full_disk_is_a_clear_error() {
    let vocab = test_models().join("vocab/ggml-vocab-gemma-4.gguf");
    assert!(vocab.is_file(), "run scripts/fetch-test-models");
    let mut repo = smollm_repo();
    repo.files.push(ServedFile::lfs("vocab.gguf", &vocab));
    let server = HubServer::start(vec![repo]);

    match SmallDisk::mount() {
        Some(disk) => {
            let cache = disk.dir.path().join("hub");
            let hub = hub(&server, &cache);
            // 98 MB into 20 MiB: refused before a byte is written.
            let e = hub
                .download(REPO, "main", GGUF, &mut |_| {}, &no_cancel())
                .unwrap_err();
            match &e {
                HubError::InsufficientDisk {
                    needed, available, ..
                } => assert!(needed > available),
                other => panic!("expected InsufficientDisk, got {other}"),
            }
            assert!(content_requests(&server).is_empty());

            // 15.8 MB fits when it starts, but the disk fills up during the download.
            let filler = disk.dir.path().join("filler");
            let mut filled = false;
            let e = hub
                .download(
                    REPO,
                    "main",
                    "vocab.gguf",
                    &mut |p| {
                        if p.downloaded > 0 && !filled {
                            filled = true;
                            fill(&filler, 10 << 20);
                        }
                    },
                    &no_cancel(),
                )
                .unwrap_err();
            assert!(matches!(e, HubError::DiskFull { .. }), "{e}");
            assert!(e.to_string().contains("disk") && e.to_string().contains("full"));
            assert!(
                hub.cached(REPO, "main", "vocab.gguf").is_none(),
                "nothing installed"
            );
            // After freeing space the download resumes and verifies.
            std::fs::remove_file(&filler).unwrap();
            let got = hub
                .download(REPO, "main", "vocab.gguf", &mut |_| {}, &no_cancel())
                .unwrap();
            assert_eq!(file_sha256(&got.path), file_sha256(&vocab));
        }
        None => {
            // No tmpfs allowed here: fail writes at the write layer after 4 MiB instead.
            eprintln!("mount refused; simulating a full disk at the write layer");
            let cache = tempfile::tempdir().unwrap();
            let mut cfg = HubConfig::new(&server.url, cache.path());
            cfg.write_wrapper = Some(std::sync::Arc::new(|f| {
                Box::new(FullAfter {
                    inner: f,
                    left: 4 << 20,
                })
            }));
            let e = Hub::new(cfg)
                .download(REPO, "main", "vocab.gguf", &mut |_| {}, &no_cancel())
                .unwrap_err();
            assert!(matches!(e, HubError::DiskFull { .. }), "{e}");
        }
    }
}

struct FullAfter {
    inner: std::fs::File,
    left: usize,
}

impl std::io::Write for FullAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
