//! Catalog downloads through the assistant, against the local hub test server (shared with
//! hearth-catalog's tests) serving the real SmolLM2 test file as the catalog's
//! smollm2-135m-instruct Q8_0 file: the catalog judged for this computer, one recommendation,
//! progress, pause then resume, cancel, a missing file and an unreachable server.

#[path = "../../catalog/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use hearth_assistant::downloads::{
    recommend, DownloadsConfig, RecommendationReason, EMBEDDING_REPO, HUB_ENDPOINT_KEY,
};
use hearth_assistant::{
    Assistant, AssistantConfig, DownloadEvent, Downloads, PullRequest, Settings,
};
use hearth_catalog::hardware::Fit;
use hearth_catalog::{HubConfig, RetryPolicy};
use hearth_store::SettingValue;
use support::hub_server::{file_sha256, Faults, HubServer, Repo, ServedFile};

const GGUF_REPO: &str = "bartowski/SmolLM2-135M-Instruct-GGUF";
const GGUF_FILE: &str = "SmolLM2-135M-Instruct-Q8_0.gguf";
const INSTALLED_ID: &str = "smollm2-135m-instruct-q8_0";
const WAIT: Duration = Duration::from_secs(120);

fn test_file() -> PathBuf {
    support::test_model("smollm2-135m-instruct-q4_1.gguf")
}

fn server() -> HubServer {
    HubServer::start(vec![Repo {
        id: GGUF_REPO.into(),
        commit: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into(),
        files: vec![ServedFile::lfs(GGUF_FILE, &test_file())],
        token: None,
    }])
}

struct Setup {
    _work: tempfile::TempDir,
    hf_cache: PathBuf,
    assistant: Assistant,
    downloads: Downloads,
}

/// A fresh data folder and Hugging Face cache. The hub is reached through the app's endpoint
/// setting (the base configuration names a closed port, so a download that ignored the setting
/// would fail).
fn setup(endpoint: &str, measure: bool) -> Setup {
    let work = tempfile::tempdir().unwrap();
    let hf_cache = work.path().join("hf");
    let assistant = Assistant::open(AssistantConfig {
        data_dir: Some(work.path().join("data")),
        threads: Some(1),
    })
    .unwrap()
    .assistant;
    assistant
        .store()
        .set_setting(HUB_ENDPOINT_KEY, &SettingValue::Text(endpoint.into()))
        .unwrap();
    let mut hub = HubConfig::new("http://127.0.0.1:9", &hf_cache);
    hub.retry = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    hub.connect_timeout = Duration::from_secs(5);
    hub.read_timeout = Duration::from_secs(10);
    let downloads = Downloads::with_config(
        assistant.clone(),
        DownloadsConfig {
            hub,
            measure_after_install: measure,
        },
    );
    Setup {
        _work: work,
        hf_cache,
        assistant,
        downloads,
    }
}

fn smollm_q8() -> PullRequest {
    PullRequest {
        catalog_id: "smollm2-135m-instruct".into(),
        quant: Some("Q8_0".into()),
        quantize_here: false,
    }
}

fn start(s: &Setup, req: PullRequest) -> (u64, Receiver<DownloadEvent>) {
    let (tx, rx) = mpsc::channel();
    let started = s
        .downloads
        .pull(
            req,
            Box::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .unwrap();
    (started.job_id, rx)
}

/// Events until one matches `until` (returned last).
fn events_until(
    rx: &Receiver<DownloadEvent>,
    until: impl Fn(&DownloadEvent) -> bool,
) -> Vec<DownloadEvent> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no matching event; got {seen:#?}"));
        let stop = until(&e);
        seen.push(e);
        if stop {
            return seen;
        }
    }
}

fn is_final(e: &DownloadEvent) -> bool {
    matches!(
        e,
        DownloadEvent::Done { .. }
            | DownloadEvent::Paused { .. }
            | DownloadEvent::Cancelled { .. }
            | DownloadEvent::Failed { .. }
    )
}

fn incomplete_files(hf_cache: &Path) -> Vec<PathBuf> {
    let blobs = hf_cache
        .join("models--bartowski--SmolLM2-135M-Instruct-GGUF")
        .join("blobs");
    std::fs::read_dir(blobs)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
                .collect()
        })
        .unwrap_or_default()
}

fn trickle(server: &HubServer) {
    server.set_faults(Faults {
        trickle: Some((16 * 1024, Duration::from_millis(20))),
        ..Faults::default()
    });
}

fn downloaded_at_least(bytes: u64) -> impl Fn(&DownloadEvent) -> bool {
    move |e| matches!(e, DownloadEvent::Progress { downloaded, .. } if *downloaded >= bytes)
}

#[test]
fn the_catalog_is_judged_for_this_computer_and_one_model_is_recommended() {
    let s = setup("http://127.0.0.1:9", false);
    let c = s.downloads.catalog(None).unwrap();
    assert_eq!(c.context, 4096, "the default fit context");
    assert!(c.machine.total_memory > 0 && c.machine.logical_cores > 0);
    assert!(c.machine.bandwidth_bytes_per_second.unwrap() > 1e8);
    assert!(c.models.len() >= 10, "the built-in catalog");
    let smol = c
        .models
        .iter()
        .find(|m| m.id == "smollm2-135m-instruct")
        .unwrap();
    let q = &smol.quants[0];
    assert_eq!(
        (q.quant.as_str(), q.recommended),
        ("Q8_0", true),
        "the recommended quantization comes first"
    );
    assert!(smol.quants[1..].iter().all(|q| !q.recommended));
    assert_eq!(q.fit, Fit::Fits, "a 135M model fits in a test machine");
    assert!(q.memory_needed > q.file_bytes / 2 && q.file_bytes > 100_000_000);
    assert!(q.predicted_tokens_per_second.unwrap() > 1.0);
    assert_eq!(q.comes_from, "download");
    assert_eq!(q.installed_id, INSTALLED_ID);
    assert!(!q.installed && q.measured_tokens_per_second.is_none());
    assert!(smol.can_quantize_here);
    // A bigger context needs more memory.
    let long = s.downloads.catalog(Some(32_768)).unwrap();
    let long_q = &long
        .models
        .iter()
        .find(|m| m.id == "smollm2-135m-instruct")
        .unwrap()
        .quants[0];
    assert!(long_q.memory_needed > q.memory_needed);

    let r = s.downloads.recommendation().unwrap();
    assert!(r.model.quants.iter().any(|q| q.quant == r.quant));
    assert!(!r.explanation.is_empty());
    if r.reason == RecommendationReason::Comfortable {
        let chosen = &r.model.quants[0];
        assert_eq!(chosen.fit, Fit::Fits);
        assert!(chosen.predicted_tokens_per_second.unwrap() >= 8.0);
        // Nothing larger also fits comfortably.
        for m in &c.models {
            let q = &m.quants[0];
            if q.fit == Fit::Fits
                && q.predicted_tokens_per_second.unwrap_or(0.0) >= 8.0
                && m.languages.iter().any(|l| l == "en")
            {
                assert!(m.parameters <= r.model.parameters, "{} is larger", m.id);
            }
        }
    }

    // On a machine with little memory and bandwidth, the rule picks differently.
    let mut small = c.clone();
    for m in &mut small.models {
        for q in &mut m.quants {
            q.fit = if m.parameters < 400_000_000 {
                Fit::Fits
            } else {
                Fit::WontFit
            };
            q.predicted_tokens_per_second = Some(3.0e10 / m.parameters as f64);
        }
    }
    let r = recommend(&small, "en").unwrap();
    assert_eq!(r.reason, RecommendationReason::Comfortable);
    assert_eq!(r.model.id, "smollm2-360m-instruct", "the largest that fits");
    let r = recommend(&small, "zh").unwrap();
    assert!(
        r.model.languages.iter().any(|l| l == "zh") || r.model.parameters < 400_000_000,
        "{}",
        r.model.id
    );
    for m in &mut small.models {
        for q in &mut m.quants {
            q.fit = Fit::Tight;
        }
    }
    let r = recommend(&small, "en").unwrap();
    assert_eq!(r.reason, RecommendationReason::Tight);
    assert_eq!(r.model.id, "smollm2-135m-instruct", "the smallest");
}

#[test]
fn a_pull_reports_progress_installs_a_verified_file_and_becomes_the_default() {
    let server = server();
    let s = setup(&server.url, true);
    let (job, rx) = start(&s, smollm_q8());
    let events = events_until(&rx, is_final);
    assert!(
        matches!(&events[0], DownloadEvent::Started { job_id, installed_id, quant, .. }
            if *job_id == job && installed_id == INSTALLED_ID && quant == "Q8_0"),
        "{:?}",
        events[0]
    );
    let size = std::fs::metadata(test_file()).unwrap().len();
    let progress: Vec<(u64, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            DownloadEvent::Progress {
                downloaded, total, ..
            } => Some((*downloaded, *total)),
            _ => None,
        })
        .collect();
    assert!(!progress.is_empty(), "{events:?}");
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(progress.last().unwrap(), &(size, Some(size)));
    let model = match events.last().unwrap() {
        DownloadEvent::Done {
            model,
            made_default,
            ..
        } => {
            assert!(made_default, "the first model becomes the default");
            model.clone()
        }
        other => panic!("expected done, got {other:?}"),
    };
    assert_eq!(model.id, INSTALLED_ID);
    assert!(model.is_default && model.available);
    assert_eq!(model.arch.as_deref(), Some("llama"));
    assert!(model.path.starts_with(s.hf_cache.to_str().unwrap()));
    assert_eq!(
        file_sha256(Path::new(&model.path)),
        file_sha256(&test_file())
    );
    assert_eq!(
        s.assistant.models().unwrap()[0].id,
        INSTALLED_ID,
        "the chat finds it"
    );

    // A small model is measured once, right after it is installed.
    let measured = events_until(&rx, |e| matches!(e, DownloadEvent::Measured { .. }));
    let speed = match measured.last().unwrap() {
        DownloadEvent::Measured {
            tokens_per_second, ..
        } => *tokens_per_second,
        _ => unreachable!(),
    };
    assert!(speed > 0.5, "{speed}");
    let c = s.downloads.catalog(None).unwrap();
    let q = &c
        .models
        .iter()
        .find(|m| m.id == "smollm2-135m-instruct")
        .unwrap()
        .quants[0];
    assert!(q.installed && q.is_default);
    assert_eq!(q.measured_tokens_per_second, Some(speed));

    // Pulling it again finds it installed; the default stays.
    let (_, rx) = start(&s, smollm_q8());
    let again = events_until(&rx, is_final);
    assert!(
        matches!(
            again.last().unwrap(),
            DownloadEvent::Done {
                made_default: false,
                ..
            }
        ),
        "{again:?}"
    );
}

#[test]
fn a_paused_pull_resumes_with_a_range_request_and_verifies() {
    let server = server();
    let s = setup(&server.url, false);
    trickle(&server);
    let (job, rx) = start(&s, smollm_q8());
    events_until(&rx, downloaded_at_least(256 * 1024));
    s.downloads.pause(job).unwrap();
    let events = events_until(&rx, is_final);
    let kept = match events.last().unwrap() {
        DownloadEvent::Paused {
            job_id, downloaded, ..
        } => {
            assert_eq!(*job_id, job);
            *downloaded
        }
        other => panic!("expected paused, got {other:?}"),
    };
    assert!(kept >= 256 * 1024);
    assert_eq!(s.downloads.paused(), vec![job]);
    let partial = incomplete_files(&s.hf_cache);
    assert_eq!(partial.len(), 1, "the partial file is kept");
    assert!(std::fs::metadata(&partial[0]).unwrap().len() >= kept);
    assert!(
        s.assistant.models().unwrap().is_empty(),
        "nothing installed yet"
    );

    // Resume: the same pull again, at full speed, continues from the partial file.
    server.set_faults(Faults::default());
    server.clear_log();
    let (job2, rx) = start(&s, smollm_q8());
    assert_ne!(job2, job);
    assert!(
        s.downloads.paused().is_empty(),
        "the resumed pull replaces the paused one"
    );
    let events = events_until(&rx, is_final);
    let first = events
        .iter()
        .find_map(|e| match e {
            DownloadEvent::Progress { resumed_from, .. } => Some(*resumed_from),
            _ => None,
        })
        .unwrap();
    assert!(first >= kept, "resumed from {first}, kept {kept}");
    let model = match events.last().unwrap() {
        DownloadEvent::Done { model, .. } => model.clone(),
        other => panic!("expected done, got {other:?}"),
    };
    assert_eq!(
        file_sha256(Path::new(&model.path)),
        file_sha256(&test_file())
    );
    let ranged: Vec<_> = server.log().into_iter().filter_map(|l| l.range).collect();
    assert!(
        ranged
            .iter()
            .any(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "resumed with a Range request: {ranged:?}"
    );
    assert!(incomplete_files(&s.hf_cache).is_empty());
}

#[test]
fn cancel_deletes_the_partial_file_and_installs_nothing() {
    let server = server();
    let s = setup(&server.url, false);
    trickle(&server);

    // Cancel while it runs.
    let (job, rx) = start(&s, smollm_q8());
    events_until(&rx, downloaded_at_least(128 * 1024));
    s.downloads.cancel(job).unwrap();
    let events = events_until(&rx, is_final);
    assert!(
        matches!(events.last().unwrap(), DownloadEvent::Cancelled { job_id } if *job_id == job),
        "{events:?}"
    );
    assert!(
        incomplete_files(&s.hf_cache).is_empty(),
        "partial file deleted"
    );
    assert!(s.assistant.models().unwrap().is_empty());
    assert!(s.downloads.paused().is_empty());
    assert_eq!(
        s.downloads.cancel(job).unwrap_err().code,
        "download.no_job",
        "a finished job cannot be cancelled again"
    );

    // Cancel a paused one.
    let (job, rx) = start(&s, smollm_q8());
    events_until(&rx, downloaded_at_least(128 * 1024));
    s.downloads.pause(job).unwrap();
    events_until(&rx, is_final);
    assert_eq!(incomplete_files(&s.hf_cache).len(), 1);
    s.downloads.cancel(job).unwrap();
    assert!(
        incomplete_files(&s.hf_cache).is_empty(),
        "partial file deleted"
    );
    assert!(s.downloads.paused().is_empty());
    assert!(s.assistant.models().unwrap().is_empty());
    let c = s.downloads.catalog(None).unwrap();
    assert!(c
        .models
        .iter()
        .all(|m| m.quants.iter().all(|q| !q.installed)));
}

#[test]
fn a_second_pull_of_the_same_repository_waits_for_the_first() {
    let server = server();
    let s = setup(&server.url, false);
    trickle(&server);
    let (job, rx) = start(&s, smollm_q8());
    let mut other = smollm_q8();
    other.quant = Some("Q4_K_M".into());
    let (tx, _rx) = mpsc::channel();
    let err = s
        .downloads
        .pull(
            other,
            Box::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .unwrap_err();
    assert_eq!(err.code, "download.busy");
    s.downloads.cancel(job).unwrap();
    events_until(&rx, is_final);
}

#[test]
fn errors_have_codes_a_front_end_can_branch_on() {
    // The file is not on the server.
    let empty = HubServer::start(vec![]);
    let s = setup(&empty.url, false);
    let (_, rx) = start(&s, smollm_q8());
    let events = events_until(&rx, is_final);
    match events.last().unwrap() {
        DownloadEvent::Failed { error, .. } => {
            assert_eq!(error.code, "download.not_found", "{error:?}");
            assert!(
                error.message.contains("SmolLM2-135M-Instruct-GGUF"),
                "{}",
                error.message
            );
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert!(s.assistant.models().unwrap().is_empty());

    // Nothing listens at the endpoint.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = setup(&closed, false);
    let (_, rx) = start(&s, smollm_q8());
    match events_until(&rx, is_final).last().unwrap() {
        DownloadEvent::Failed { error, .. } => assert_eq!(error.code, "download.offline"),
        other => panic!("expected failed, got {other:?}"),
    }

    // Refused before anything starts.
    let sink = || -> hearth_assistant::DownloadSink { Box::new(|_| {}) };
    let bad = |catalog_id: &str, quant: Option<&str>, here: bool| {
        s.downloads
            .pull(
                PullRequest {
                    catalog_id: catalog_id.into(),
                    quant: quant.map(str::to_string),
                    quantize_here: here,
                },
                sink(),
            )
            .unwrap_err()
            .code
    };
    assert_eq!(bad("no-such-model", None, false), "download.unknown_model");
    assert_eq!(
        bad("smollm2-135m-instruct", Some("Q2_K"), false),
        "download.unknown_quant"
    );
    assert_eq!(s.downloads.pause(999).unwrap_err().code, "download.no_job");
}

#[test]
fn the_settings_download_endpoint_is_the_hub_endpoint() {
    let s = setup("http://127.0.0.1:9", false);
    let mut settings = s.assistant.settings().unwrap();
    settings.download_endpoint = Some("http://mirror.example/".into());
    s.assistant.update_settings(settings).unwrap();
    if std::env::var_os("HF_ENDPOINT").is_none() {
        assert_eq!(s.downloads.hub_config().endpoint, "http://mirror.example");
    }
    let back: Settings = s.assistant.settings().unwrap();
    assert_eq!(
        back.download_endpoint.as_deref(),
        Some("http://mirror.example/")
    );
}

/// The embedding model for document search, served by the local hub from the real
/// all-MiniLM-L6-v2 files of the test models folder.
fn minilm_server() -> HubServer {
    let weights = support::test_model("all-minilm-l6-v2/model.safetensors");
    let dir = weights.parent().unwrap().to_path_buf();
    let small = |name: &str| ServedFile::small(name, &std::fs::read(dir.join(name)).unwrap());
    HubServer::start(vec![Repo {
        id: EMBEDDING_REPO.into(),
        commit: "c9745ed1d9f207416be6d2e6f8de32d1f16199bf".into(),
        files: vec![
            ServedFile::lfs("model.safetensors", &dir.join("model.safetensors")),
            small("config.json"),
            small("tokenizer.json"),
        ],
        token: None,
    }])
}

fn start_embedding(s: &Setup) -> (u64, Receiver<DownloadEvent>) {
    let (tx, rx) = mpsc::channel();
    let started = s
        .downloads
        .pull_embedding_model(Box::new(move |e| {
            let _ = tx.send(e);
        }))
        .unwrap();
    (started.job_id, rx)
}

fn is_embedding_final(e: &DownloadEvent) -> bool {
    is_final(e) || matches!(e, DownloadEvent::Installed { .. })
}

/// The search model: downloaded with progress, checked, put in place where questions find it;
/// a damaged download and a cancelled one leave nothing behind and keep a good model.
#[test]
fn the_search_model_is_downloaded_checked_and_installed() {
    let server = minilm_server();
    let s = setup(&server.url, false);
    assert!(s.assistant.embedding_model_dir().is_none());

    // Damaged on the way: refused, nothing installed.
    server.set_faults(Faults {
        corrupt_offset: Some(1_000_000),
        ..Default::default()
    });
    let (_, rx) = start_embedding(&s);
    let events = events_until(&rx, is_embedding_final);
    match events.last().unwrap() {
        DownloadEvent::Failed { error, .. } => assert_eq!(error.code, "download.checksum"),
        e => panic!("expected a checksum failure, got {e:?}"),
    }
    assert!(s.assistant.embedding_model_dir().is_none());
    server.set_faults(Faults::default());

    // Cancelled while it trickles in: nothing installed, no partial file kept.
    trickle(&server);
    let (job, rx) = start_embedding(&s);
    events_until(
        &rx,
        |e| matches!(e, DownloadEvent::Progress { downloaded, .. } if *downloaded > 0),
    );
    s.downloads.cancel(job).unwrap();
    let events = events_until(&rx, is_embedding_final);
    assert!(
        matches!(events.last(), Some(DownloadEvent::Cancelled { .. })),
        "{events:?}"
    );
    assert!(s.assistant.embedding_model_dir().is_none());
    server.set_faults(Faults::default());

    // Whole: progress, then installed where the assistant looks for it.
    let (_, rx) = start_embedding(&s);
    let events = events_until(&rx, is_embedding_final);
    assert!(events
        .iter()
        .any(|e| matches!(e, DownloadEvent::Progress { total: Some(t), .. } if *t > 80_000_000)));
    let DownloadEvent::Installed {
        folder,
        installed_id,
        ..
    } = events.last().unwrap()
    else {
        panic!("expected the model installed, got {events:?}");
    };
    assert_eq!(installed_id, "all-minilm-l6-v2");
    assert_eq!(
        s.assistant.embedding_model_dir().as_deref(),
        Some(Path::new(folder))
    );
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(Path::new(folder).join(f).is_file(), "{f}");
    }
    let blobs = s
        .hf_cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2")
        .join("blobs");
    let leftovers: Vec<_> = std::fs::read_dir(blobs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second, damaged download does not replace the good model.
    server.set_faults(Faults {
        corrupt_offset: Some(1_000_000),
        ..Default::default()
    });
    std::fs::remove_dir_all(
        s.hf_cache
            .join("models--sentence-transformers--all-MiniLM-L6-v2"),
    )
    .unwrap();
    let (_, rx) = start_embedding(&s);
    let events = events_until(&rx, is_embedding_final);
    assert!(matches!(events.last(), Some(DownloadEvent::Failed { .. })));
    assert_eq!(
        s.assistant.embedding_model_dir().as_deref(),
        Some(Path::new(folder))
    );
}
