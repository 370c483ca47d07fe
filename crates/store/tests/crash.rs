//! Crash safety: a child process writes conversations, messages and streaming updates as fast
//! as a chat would; the test kills it with SIGKILL at random moments, 50 times, on the same
//! database. After every kill the database passes `PRAGMA integrity_check` and the FTS checks,
//! and every write the child saw return is there.
//!
//! This binary has its own `main` (no libtest harness) because it re-runs itself as the child:
//! with `HEARTH_STORE_CRASH_CHILD=<db path>` set, it is the writer. The child prints one line
//! per returned write, flushed before the next write starts:
//! - `M <id>`: message `<id>` was added;
//! - `S <id> <bytes>`: a streaming update of `<bytes>` bytes is committed;
//! - `F <id> <bytes>`: the message was finished (status done) with `<bytes>` bytes.
//!
//! Set `HEARTH_CRASH_SEED` to replay a run (the seed is printed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_store::{
    GenerationStats, NewMessage, OpenOptions, Outcome, Sampling, Store, StreamWrite,
};

const TEST_NAME: &str = "sigkill_50_times_keeps_every_returned_write";
const CHILD_ENV: &str = "HEARTH_STORE_CRASH_CHILD";
const KILLS: usize = 50;
const TOKENS_PER_ANSWER: u32 = 120;

/// The text of an answer after `n` tokens: deterministic, mixed scripts.
fn answer_text(message: i64, n: u32) -> String {
    const WORDS: [&str; 8] = [
        "local ",
        "模型",
        " inference",
        "，",
        " runs",
        " 很快",
        " on CPU",
        ". ",
    ];
    (0..n)
        .map(|i| WORDS[((i as i64 + message) % WORDS.len() as i64) as usize])
        .collect()
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| TEST_NAME.contains(f.as_str())) {
        println!("running 0 tests (filtered out)");
        return;
    }
    println!("running 1 test");
    let started = Instant::now();
    parent();
    println!(
        "test {TEST_NAME} ... ok ({:.1} s)\n\ntest result: ok. 1 passed; 0 failed",
        started.elapsed().as_secs_f64()
    );
}

fn child(path: &Path) {
    let options = OpenOptions {
        streaming_flush_interval: Duration::from_millis(15),
        ..OpenOptions::default()
    };
    let opened = Store::open_with(path, &options).expect("child: open");
    assert!(opened.recovery.is_none(), "child: the database was damaged");
    let store = opened.store;
    store
        .fail_interrupted_messages()
        .expect("child: fail interrupted");
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        out.write_all(line.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        out.flush().unwrap();
    };
    let mut round = 0u64;
    loop {
        let conv = store
            .create_conversation(&format!("crash round {round}"))
            .expect("child: conversation");
        let mut parent = None;
        for turn in 0..3 {
            let q = store
                .add_message(&NewMessage::user(
                    conv.id,
                    parent,
                    format!("question {turn} of round {round}: 为什么天空是蓝色的？"),
                ))
                .expect("child: user message");
            say(format!("M {}", q.id));
            let a = store
                .add_message(&NewMessage::assistant_streaming(
                    conv.id,
                    Some(q.id),
                    "crash-test-model",
                    Sampling::default(),
                ))
                .expect("child: assistant message");
            say(format!("M {}", a.id));
            for n in 1..=TOKENS_PER_ANSWER {
                let text = answer_text(a.id.0, n);
                if store
                    .append_streaming(a.id, &text, n)
                    .expect("child: append")
                    == StreamWrite::Written
                {
                    say(format!("S {} {}", a.id, text.len()));
                }
                // About a thousand tokens a second.
                std::thread::sleep(Duration::from_micros(900));
            }
            let text = answer_text(a.id.0, TOKENS_PER_ANSWER);
            store
                .finish_message(
                    a.id,
                    &text,
                    Outcome::Done,
                    &GenerationStats {
                        completion_tokens: Some(TOKENS_PER_ANSWER),
                        ..GenerationStats::default()
                    },
                )
                .expect("child: finish");
            say(format!("F {} {}", a.id, text.len()));
            parent = Some(a.id);
        }
        round += 1;
    }
}

/// What the child reported, per message: the longest committed text and whether finished.
#[derive(Default, Debug)]
struct Seen {
    bytes: usize,
    finished: bool,
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let seed = std::env::var("HEARTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed} (HEARTH_CRASH_SEED to replay)");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };

    let mut seen: HashMap<i64, Seen> = HashMap::new();
    let mut total_lines = 0usize;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                // A line cut by the kill (no newline) is not a returned write.
                if line.ends_with('\n') {
                    lines.push(line.trim_end().to_string());
                }
                line.clear();
            }
            lines
        });
        // Random moment: sometimes during start-up, mostly mid-stream.
        let wait = if kill % 10 == 0 {
            next() % 15
        } else {
            5 + next() % 250
        };
        std::thread::sleep(Duration::from_millis(wait));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("child exited by itself ({status}) before the kill: {err}");
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        total_lines += lines.len();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let id: i64 = parts[1].parse().unwrap();
            let entry = seen.entry(id).or_default();
            match parts[0] {
                "M" => {}
                "S" => entry.bytes = entry.bytes.max(parts[2].parse().unwrap()),
                "F" => {
                    entry.bytes = parts[2].parse().unwrap();
                    entry.finished = true;
                }
                other => panic!("unexpected line {other:?}"),
            }
        }
        check(&db, &seen, kill);
    }
    // The store opens the result without any recovery.
    let opened = Store::open(&db).unwrap();
    assert!(opened.recovery.is_none());
    assert!(opened.store.verify().unwrap().is_empty());
    println!(
        "{KILLS} kills, {} messages, {total_lines} returned writes checked",
        seen.len()
    );
}

fn check(db: &Path, seen: &HashMap<i64, Seen>, kill: usize) {
    if !db.exists() {
        assert!(seen.is_empty());
        return;
    }
    // Look at the file from outside the store, as the next start would find it.
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "after kill {kill}");
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if tables == 0 {
        // Killed before the first migration committed: nothing can have been reported.
        assert!(
            seen.is_empty(),
            "after kill {kill}: writes reported but no schema"
        );
        return;
    }
    for table in ["messages_fts", "chunks_fts"] {
        conn.execute(
            &format!("INSERT INTO {table}({table}) VALUES ('integrity-check')"),
            [],
        )
        .unwrap_or_else(|e| panic!("after kill {kill}: {table}: {e}"));
    }
    let fk: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0, "after kill {kill}: foreign key violations");
    let mut stmt = conn
        .prepare("SELECT content, status FROM messages WHERE id = ?1")
        .unwrap();
    for (id, s) in seen {
        let row: Option<(String, String)> =
            stmt.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).ok();
        let (content, status) =
            row.unwrap_or_else(|| panic!("after kill {kill}: message {id} is missing"));
        if s.finished {
            assert_eq!(status, "done", "after kill {kill}: message {id}");
            assert_eq!(content, answer_text(*id, TOKENS_PER_ANSWER));
        } else if s.bytes > 0 {
            assert!(
                content.len() >= s.bytes,
                "after kill {kill}: message {id} has {} bytes, {} were committed",
                content.len(),
                s.bytes
            );
            assert!(answer_text(*id, TOKENS_PER_ANSWER).starts_with(&content));
        }
    }
}
