//! A small Hugging Face hub on 127.0.0.1 for tests, written on std::net. It speaks the parts of
//! the hub's protocol that downloads use and can inject faults.
//!
//! - `GET /api/models/OWNER/NAME/revision/REV[?blobs=true]`: JSON with `sha` and `siblings`
//!   (`rfilename`, `size`, `blobId`, `lfs: {sha256, size}`); 401 for a gated repository without
//!   the right token; 404 for unknown repositories or revisions.
//! - `GET|HEAD /OWNER/NAME/resolve/REV/FILE`: LFS files answer 302 to `/cdn-lfs/...` with
//!   `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size` and `ETag`; small files are served inline
//!   with their git blob id as `ETag`.
//! - `GET /cdn-lfs/OWNER/NAME/SHA256`: the content, with `Range` (206, `Content-Range`, 416).
//!
//! Faults: drop the connection after N body bytes (once), corrupt one byte, answer given statuses
//! (404, 429, 503, ...) before serving normally, trickle slowly, ignore `Range`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

pub enum Content {
    Disk(PathBuf),
    Memory(Vec<u8>),
}

pub struct ServedFile {
    pub name: String,
    pub content: Content,
    pub size: u64,
    pub sha256: String,
    pub git_sha1: String,
    pub lfs: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a file, computed once per path for the whole test binary.
pub fn file_sha256(path: &Path) -> String {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().unwrap().get(path) {
        return h.clone();
    }
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let out = hex(&h.finalize());
    cache
        .lock()
        .unwrap()
        .insert(path.to_path_buf(), out.clone());
    out
}

impl ServedFile {
    /// A large file served through LFS (metadata carries its SHA-256).
    pub fn lfs(name: &str, path: &Path) -> Self {
        let size = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        let sha256 = file_sha256(path);
        // The git blob of an LFS file is its pointer; its id only needs to be stable here.
        let mut p = Sha1::new();
        p.update(format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
        ));
        Self {
            name: name.into(),
            content: Content::Disk(path.to_path_buf()),
            size,
            sha256,
            git_sha1: hex(&p.finalize()),
            lfs: true,
        }
    }

    /// A small file stored in git itself (no LFS metadata; verified by its git blob id).
    pub fn small(name: &str, bytes: &[u8]) -> Self {
        let mut s = Sha256::new();
        s.update(bytes);
        let mut g = Sha1::new();
        g.update(format!("blob {}\0", bytes.len()));
        g.update(bytes);
        Self {
            name: name.into(),
            size: bytes.len() as u64,
            content: Content::Memory(bytes.to_vec()),
            sha256: hex(&s.finalize()),
            git_sha1: hex(&g.finalize()),
            lfs: false,
        }
    }
}

pub struct Repo {
    pub id: String,
    pub commit: String,
    pub files: Vec<ServedFile>,
    /// Token required to see this repository.
    pub token: Option<String>,
}

#[derive(Default, Clone)]
pub struct Faults {
    /// Close the connection after this many body bytes of the next content response (once).
    pub drop_after_bytes: Option<u64>,
    /// Flip the byte at this offset in every content response that covers it.
    pub corrupt_offset: Option<u64>,
    /// The next resolve/content requests get these statuses, in order, before normal service.
    pub statuses: Vec<u16>,
    /// `Retry-After` value sent with 429/503 answers.
    pub retry_after: Option<u32>,
    /// Send this many bytes, then sleep, repeatedly.
    pub trickle: Option<(usize, Duration)>,
    /// Answer Range requests with the whole file (200).
    pub ignore_range: bool,
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

struct State {
    repos: Vec<Repo>,
    faults: Faults,
    log: Vec<Logged>,
}

pub struct HubServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl HubServer {
    pub fn start(repos: Vec<Repo>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            repos,
            faults: Faults::default(),
            log: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
            stop,
            addr,
        }
    }

    pub fn set_faults(&self, f: Faults) {
        self.state.lock().unwrap().faults = f;
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

fn write_head(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut s = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    stream.write_all(s.as_bytes())
}

fn simple(
    stream: &mut TcpStream,
    status: u16,
    extra: Vec<(String, String)>,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut h = extra;
    h.push(("Content-Length".into(), body.len().to_string()));
    write_head(stream, status, &h)?;
    if !head_only {
        stream.write_all(body)?;
    }
    Ok(())
}

fn handle(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(req) = read_request(&stream) else {
        return Ok(());
    };
    let (path, _query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    let path = path.to_string();
    let head_only = req.method == "HEAD";
    let range = req.headers.get("range").cloned();
    let auth = req.headers.get("authorization").cloned();
    let log = |status: u16| {
        state.lock().unwrap().log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            range: range.clone(),
            authorization: auth.clone(),
            status,
        })
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // Metadata.
    if segs.len() >= 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "revision" {
        let repo_id = format!("{}/{}", segs[2], segs[3]);
        let rev = segs[5..].join("/");
        let st = state.lock().unwrap();
        let Some(repo) = st.repos.iter().find(|r| r.id == repo_id) else {
            drop(st);
            log(404);
            return simple(
                &mut stream,
                404,
                vec![("X-Error-Code".into(), "RepoNotFound".into())],
                br#"{"error":"Repository not found"}"#,
                head_only,
            );
        };
        if let Some(t) = &repo.token {
            if auth.as_deref() != Some(&format!("Bearer {t}")) {
                drop(st);
                log(401);
                return simple(
                    &mut stream,
                    401,
                    vec![("X-Error-Code".into(), "GatedRepo".into())],
                    br#"{"error":"Access to this model is restricted"}"#,
                    head_only,
                );
            }
        }
        if rev != "main" && rev != repo.commit {
            drop(st);
            log(404);
            return simple(
                &mut stream,
                404,
                vec![("X-Error-Code".into(), "RevisionNotFound".into())],
                br#"{"error":"Revision not found"}"#,
                head_only,
            );
        }
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|f| {
                let mut v =
                    serde_json::json!({"rfilename": f.name, "size": f.size, "blobId": f.git_sha1});
                if f.lfs {
                    v["lfs"] =
                        serde_json::json!({"sha256": f.sha256, "size": f.size, "pointerSize": 134});
                }
                v
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "_id": "0000", "id": repo.id, "sha": repo.commit, "private": false,
            "gated": repo.token.is_some(), "siblings": siblings
        }))
        .unwrap();
        drop(st);
        log(200);
        return simple(
            &mut stream,
            200,
            vec![("Content-Type".into(), "application/json".into())],
            &body,
            head_only,
        );
    }

    // Injected statuses come before anything else on resolve and content requests.
    let injected = {
        let mut st = state.lock().unwrap();
        if st.faults.statuses.is_empty() {
            None
        } else {
            Some((st.faults.statuses.remove(0), st.faults.retry_after))
        }
    };
    if let Some((status, retry_after)) = injected {
        log(status);
        let mut h = Vec::new();
        if let (Some(s), 429 | 503) = (retry_after, status) {
            h.push(("Retry-After".to_string(), s.to_string()));
        }
        return simple(&mut stream, status, h, b"injected fault", head_only);
    }

    // resolve: OWNER/NAME/resolve/REV/FILE...
    if segs.len() >= 5 && segs[2] == "resolve" {
        let repo_id = format!("{}/{}", segs[0], segs[1]);
        let rev = segs[3];
        let file = segs[4..].join("/");
        let st = state.lock().unwrap();
        let repo = st
            .repos
            .iter()
            .find(|r| r.id == repo_id && (rev == "main" || rev == r.commit));
        let Some(repo) = repo else {
            drop(st);
            log(404);
            return simple(
                &mut stream,
                404,
                vec![("X-Error-Code".into(), "RepoNotFound".into())],
                b"",
                head_only,
            );
        };
        if let Some(t) = &repo.token {
            if auth.as_deref() != Some(&format!("Bearer {t}")) {
                drop(st);
                log(401);
                return simple(&mut stream, 401, vec![], b"", head_only);
            }
        }
        let Some(f) = repo.files.iter().find(|f| f.name == file) else {
            drop(st);
            log(404);
            return simple(
                &mut stream,
                404,
                vec![("X-Error-Code".into(), "EntryNotFound".into())],
                b"",
                head_only,
            );
        };
        let common = vec![("X-Repo-Commit".to_string(), repo.commit.clone())];
        if f.lfs {
            let mut h = common;
            h.push((
                "Location".into(),
                format!("/cdn-lfs/{}/{}?expires=1", repo.id, f.sha256),
            ));
            h.push(("X-Linked-Etag".into(), format!("\"{}\"", f.sha256)));
            h.push(("X-Linked-Size".into(), f.size.to_string()));
            h.push(("ETag".into(), format!("\"{}\"", f.git_sha1)));
            drop(st);
            log(302);
            return simple(&mut stream, 302, h, b"", head_only);
        }
        let Content::Memory(bytes) = &f.content else {
            unreachable!("small files live in memory")
        };
        let mut h = common;
        h.push(("ETag".into(), format!("\"{}\"", f.git_sha1)));
        let body = bytes.clone();
        drop(st);
        log(200);
        return simple(&mut stream, 200, h, &body, head_only);
    }

    // cdn-lfs/OWNER/NAME/SHA
    if segs.len() == 4 && segs[0] == "cdn-lfs" {
        let repo_id = format!("{}/{}", segs[1], segs[2]);
        let sha = segs[3];
        let (source, size, faults) = {
            let mut st = state.lock().unwrap();
            let found = st
                .repos
                .iter()
                .find(|r| r.id == repo_id)
                .and_then(|r| r.files.iter().find(|f| f.lfs && f.sha256 == sha))
                .map(|f| match &f.content {
                    Content::Disk(p) => (p.clone(), f.size),
                    Content::Memory(_) => unreachable!("LFS files live on disk"),
                });
            let faults = st.faults.clone();
            // The drop fault fires once.
            st.faults.drop_after_bytes = None;
            match found {
                Some((p, s)) => (p, s, faults),
                None => {
                    drop(st);
                    log(404);
                    return simple(&mut stream, 404, vec![], b"", head_only);
                }
            }
        };
        let mut start = 0u64;
        if let (Some(r), false) = (&range, faults.ignore_range) {
            if let Some(from) = r
                .strip_prefix("bytes=")
                .and_then(|x| x.split('-').next())
                .and_then(|x| x.parse::<u64>().ok())
            {
                start = from;
            }
        }
        let mut h = vec![
            ("ETag".to_string(), format!("\"{sha}\"")),
            ("Accept-Ranges".to_string(), "bytes".to_string()),
        ];
        if start >= size && start > 0 {
            h.push(("Content-Range".into(), format!("bytes */{size}")));
            log(416);
            return simple(&mut stream, 416, h, b"", head_only);
        }
        let status = if start > 0 { 206 } else { 200 };
        if status == 206 {
            h.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{size}", size - 1),
            ));
        }
        h.push(("Content-Length".into(), (size - start).to_string()));
        log(status);
        write_head(&mut stream, status, &h)?;
        if head_only {
            return Ok(());
        }
        let mut file = std::fs::File::open(&source)?;
        file.seek(SeekFrom::Start(start))?;
        let mut pos = start;
        let mut sent = 0u64;
        let chunk = faults.trickle.map(|(n, _)| n).unwrap_or(64 * 1024);
        let mut buf = vec![0u8; chunk];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let mut n = n;
            if let Some(limit) = faults.drop_after_bytes {
                if sent + n as u64 >= limit {
                    n = (limit - sent) as usize;
                    stream.write_all(&buf[..n])?;
                    stream.flush()?;
                    let _ = stream.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
            if let Some(off) = faults.corrupt_offset {
                if off >= pos && off < pos + n as u64 {
                    buf[(off - pos) as usize] ^= 0x5a;
                }
            }
            stream.write_all(&buf[..n])?;
            pos += n as u64;
            sent += n as u64;
            if let Some((_, pause)) = faults.trickle {
                std::thread::sleep(pause);
            }
        }
        return Ok(());
    }
    log(404);
    simple(&mut stream, 404, vec![], b"", head_only)
}
