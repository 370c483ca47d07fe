//! Full-text search benchmark: fills a database with 100,000 messages of varied text
//! (English, Chinese, mixed, code) through the public API, then times many queries of each
//! kind and prints the median (and p90, max) per kind.
//!
//! ```text
//! cargo run --release -p hearth-store --example search_bench [-- MESSAGES [DB_PATH]]
//! ```
//!
//! With `DB_PATH` the database is kept there and reused by the next run if it already holds
//! enough messages. Query time is for the whole call: SQL, reading the rows and building the
//! snippets of the first 20 hits.

use std::time::{Duration, Instant};

use hearth_store::{
    GenerationStats, NewMessage, OpenCheck, OpenOptions, Outcome, Sampling, SearchOptions,
    SearchOrder, Store,
};

const ENGLISH: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "that",
    "for",
    "you",
    "with",
    "on",
    "as",
    "this",
    "be",
    "are",
    "can",
    "model",
    "models",
    "data",
    "file",
    "run",
    "running",
    "laptop",
    "memory",
    "context",
    "window",
    "token",
    "tokens",
    "prompt",
    "answer",
    "question",
    "translate",
    "translation",
    "summary",
    "summarize",
    "document",
    "documents",
    "page",
    "chapter",
    "section",
    "language",
    "languages",
    "english",
    "chinese",
    "french",
    "german",
    "spanish",
    "japanese",
    "quantized",
    "quantization",
    "weights",
    "layer",
    "layers",
    "attention",
    "cache",
    "speed",
    "slow",
    "fast",
    "faster",
    "cpu",
    "gpu",
    "thread",
    "threads",
    "offline",
    "private",
    "local",
    "download",
    "install",
    "settings",
    "temperature",
    "sampling",
    "seed",
    "greedy",
    "beam",
    "error",
    "failed",
    "cancel",
    "stop",
    "retry",
    "network",
    "server",
    "client",
    "request",
    "response",
    "stream",
    "streaming",
    "database",
    "search",
    "index",
    "query",
    "result",
    "results",
    "recipe",
    "garden",
    "weather",
    "travel",
    "budget",
    "invoice",
    "meeting",
    "schedule",
    "project",
    "deadline",
    "report",
    "quarterly",
    "revenue",
    "customer",
    "email",
    "letter",
    "poem",
    "story",
    "history",
    "science",
    "physics",
    "chemistry",
    "biology",
    "mathematics",
    "equation",
    "proof",
    "theorem",
    "algorithm",
    "function",
    "variable",
    "loop",
    "compile",
    "compiler",
    "rust",
    "python",
    "javascript",
    "typescript",
    "kernel",
    "linux",
    "windows",
    "macos",
    "keyboard",
    "shortcut",
    "explain",
    "example",
    "because",
    "however",
    "therefore",
    "although",
    "important",
    "different",
    "similar",
    "simple",
    "complex",
    "question",
    "problem",
    "solution",
    "idea",
    "plan",
    "step",
    "first",
    "second",
    "finally",
    "morning",
    "evening",
    "coffee",
    "tea",
    "bread",
    "cheese",
    "mountain",
    "river",
    "ocean",
    "forest",
    "city",
    "village",
    "train",
    "airport",
    "hotel",
    "museum",
    "library",
    "school",
    "teacher",
    "student",
    "doctor",
    "hospital",
    "medicine",
    "health",
    "exercise",
    "sleep",
    "music",
    "guitar",
    "piano",
    "painting",
    "photograph",
    "camera",
    "battery",
    "charger",
    "screen",
    "display",
    "resolution",
    "pixel",
    "color",
    "light",
    "dark",
    "theme",
    "font",
];

const RARE: &[&str] = &[
    "xylophone",
    "quasar",
    "zeppelin",
    "marzipan",
    "obsidian",
    "fjord",
    "kumquat",
    "labyrinth",
    "narwhal",
    "origami",
    "pangolin",
    "quokka",
    "sasquatch",
    "tundra",
    "ukulele",
    "vortex",
    "wombat",
    "yodeling",
    "zucchini",
    "axolotl",
];

const CHINESE: &[&str] = &[
    "模型",
    "数据",
    "文件",
    "运行",
    "笔记本电脑",
    "内存",
    "上下文",
    "窗口",
    "提示词",
    "回答",
    "问题",
    "翻译",
    "摘要",
    "文档",
    "页面",
    "章节",
    "语言",
    "中文",
    "英文",
    "量化",
    "权重",
    "注意力",
    "缓存",
    "速度",
    "很快",
    "很慢",
    "处理器",
    "显卡",
    "线程",
    "离线",
    "隐私",
    "本地",
    "下载",
    "安装",
    "设置",
    "温度",
    "采样",
    "错误",
    "失败",
    "取消",
    "网络",
    "服务器",
    "请求",
    "数据库",
    "搜索",
    "索引",
    "结果",
    "菜谱",
    "花园",
    "天气",
    "旅行",
    "预算",
    "发票",
    "会议",
    "日程",
    "项目",
    "截止日期",
    "报告",
    "季度",
    "收入",
    "客户",
    "邮件",
    "诗歌",
    "故事",
    "历史",
    "科学",
    "物理",
    "化学",
    "生物",
    "数学",
    "方程",
    "证明",
    "算法",
    "函数",
    "变量",
    "编译器",
    "键盘",
    "快捷键",
    "解释",
    "例子",
    "因为",
    "但是",
    "所以",
    "虽然",
    "重要",
    "不同",
    "简单",
    "复杂",
    "解决方案",
    "计划",
    "步骤",
    "首先",
    "然后",
    "最后",
    "早上",
    "晚上",
    "咖啡",
    "茶",
    "面包",
    "山",
    "河流",
    "海洋",
    "森林",
    "城市",
    "村庄",
    "火车",
    "机场",
    "酒店",
    "博物馆",
    "图书馆",
    "学校",
    "老师",
    "学生",
    "医生",
    "医院",
    "健康",
    "运动",
    "睡眠",
    "音乐",
    "钢琴",
    "照片",
    "相机",
    "电池",
    "屏幕",
    "分辨率",
    "颜色",
    "机器学习",
    "人工智能",
    "神经网络",
    "自然语言处理",
    "我们",
    "你们",
    "可以",
    "需要",
    "应该",
    "已经",
    "正在",
    "的",
    "了",
    "是",
    "在",
    "和",
    "有",
    "这个",
    "那个",
    "一个",
];

const CODE: &[&str] = &[
    "fn main() {",
    "let x = vec![1, 2, 3];",
    "println!(\"{}\", x);",
    "}",
    "def train(model):",
    "return loss.item()",
    "import numpy as np",
    "SELECT * FROM messages;",
    "cargo build --release",
    "git commit -m \"fix\"",
    "for i in range(10):",
    "if err != nil {",
    "const cache = new Map();",
    "await fetch(url)",
    "#include <stdio.h>",
    "std::vector<int> v;",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Index skewed towards the front (roughly Zipf-like word frequencies).
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

fn english(rng: &mut Rng, words: usize) -> String {
    let mut out = String::new();
    for i in 0..words {
        let w = if rng.below(400) == 0 {
            RARE[rng.below(RARE.len())]
        } else {
            ENGLISH[rng.skewed(ENGLISH.len())]
        };
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
        if rng.below(12) == 0 {
            out.push_str(if rng.below(3) == 0 { ",\n" } else { "." });
        }
    }
    out.push('.');
    out
}

fn chinese(rng: &mut Rng, words: usize) -> String {
    let mut out = String::new();
    for _ in 0..words {
        out.push_str(CHINESE[rng.skewed(CHINESE.len())]);
        if rng.below(10) == 0 {
            out.push_str(if rng.below(2) == 0 { "，" } else { "。" });
        }
    }
    out.push('。');
    out
}

fn message_text(rng: &mut Rng, assistant: bool) -> String {
    let words = if assistant {
        20 + rng.below(180)
    } else {
        4 + rng.below(40)
    };
    match rng.below(20) {
        0..=11 => english(rng, words),
        12..=16 => chinese(rng, words),
        17..=18 => format!(
            "{} {} {}",
            english(rng, words / 2),
            chinese(rng, words / 2),
            english(rng, 5)
        ),
        _ => {
            let mut s = english(rng, words / 3);
            s.push_str("\n```\n");
            for _ in 0..(3 + rng.below(10)) {
                s.push_str(CODE[rng.below(CODE.len())]);
                s.push('\n');
            }
            s.push_str("```\n");
            s
        }
    }
}

fn fill(store: &Store, messages: usize, rng: &mut Rng) {
    let started = Instant::now();
    let mut written = 0;
    let mut conv_n = 0;
    while written < messages {
        let title_words = 3 + rng.below(4);
        let conv = store
            .create_conversation(&english(rng, title_words))
            .expect("conversation");
        conv_n += 1;
        let mut parent = None;
        let turns = 5 + rng.below(20);
        for _ in 0..turns {
            if written >= messages {
                break;
            }
            let q = store
                .add_message(&NewMessage::user(conv.id, parent, message_text(rng, false)))
                .expect("user message");
            // Sometimes the answer is regenerated: a sibling branch.
            let answers = if rng.below(8) == 0 { 2 } else { 1 };
            let mut last = q.id;
            for _ in 0..answers {
                let a = store
                    .add_message(&NewMessage::assistant_streaming(
                        conv.id,
                        Some(q.id),
                        "smollm2-135m-instruct-q4_1",
                        Sampling::default(),
                    ))
                    .expect("assistant message");
                let text = message_text(rng, true);
                store
                    .finish_message(a.id, &text, Outcome::Done, &GenerationStats::default())
                    .expect("finish");
                last = a.id;
                written += 1;
            }
            written += 1;
            parent = Some(last);
        }
        if conv_n % 500 == 0 {
            eprint!(
                "\r{written} messages ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "\rinserted {written} messages in {conv_n} conversations in {:.1} s ({:.0} messages/s)",
        started.elapsed().as_secs_f64(),
        written as f64 / started.elapsed().as_secs_f64()
    );
}

fn stats(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(times[times.len() / 2]);
    let p90 = ms(times[times.len() * 9 / 10]);
    let max = ms(*times.last().unwrap());
    (median, p90, max)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let messages: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("bench.sqlite3"));

    let options = OpenOptions {
        check: OpenCheck::Schema,
        ..OpenOptions::default()
    };
    let store = Store::open_with(&path, &options).expect("open").store;
    let existing: usize = store
        .list_conversations()
        .expect("list")
        .iter()
        .map(|c| store.messages(c.id).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    if existing < messages {
        fill(&store, messages - existing, &mut rng);
    } else {
        eprintln!("reusing {existing} messages in {}", path.display());
    }
    drop(store);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("database: {:.1} MiB", size as f64 / 1048576.0);

    // Cost of the checks done at open.
    for check in [OpenCheck::Auto, OpenCheck::Quick, OpenCheck::Full] {
        let t = Instant::now();
        let opened = Store::open_with(
            &path,
            &OpenOptions {
                check,
                ..OpenOptions::default()
            },
        )
        .expect("open");
        eprintln!(
            "open with {check:?} check: {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        drop(opened.store);
    }
    let store = Store::open_with(&path, &options).expect("open").store;

    let mut q = Rng(0x1234_5678_9ABC_DEF1);
    type MakeQuery = Box<dyn Fn(&mut Rng) -> String>;
    let kinds: Vec<(&str, MakeQuery)> = vec![
        (
            "english word",
            Box::new(|r: &mut Rng| ENGLISH[r.below(ENGLISH.len())].to_string()),
        ),
        (
            "two english words",
            Box::new(|r: &mut Rng| {
                format!(
                    "{} {}",
                    ENGLISH[r.below(ENGLISH.len())],
                    ENGLISH[r.below(ENGLISH.len())]
                )
            }),
        ),
        (
            "rare word",
            Box::new(|r: &mut Rng| RARE[r.below(RARE.len())].to_string()),
        ),
        (
            "chinese, 3+ chars",
            Box::new(|r: &mut Rng| loop {
                let w = CHINESE[r.below(CHINESE.len())];
                if w.chars().count() >= 3 {
                    return w.to_string();
                }
            }),
        ),
        (
            "chinese, 2 chars (LIKE)",
            Box::new(|r: &mut Rng| loop {
                let w = CHINESE[r.below(CHINESE.len())];
                if w.chars().count() == 2 {
                    return w.to_string();
                }
            }),
        ),
        (
            "short, no match (scan)",
            Box::new(|r: &mut Rng| ["qx", "zv", "圳圳", "xq", "鑫鑫"][r.below(5)].to_string()),
        ),
    ];
    let rounds = 100;
    let mut all = Vec::new();
    let mut all_trigram = Vec::new();
    println!("{messages} messages, limit 20, {rounds} queries per kind and order:");
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "query kind", "order", "hits(avg)", "median", "p90", "max"
    );
    for (name, make) in &kinds {
        for order in [SearchOrder::Newest, SearchOrder::Relevance] {
            let opts = SearchOptions {
                order,
                ..SearchOptions::default()
            };
            let mut times = Vec::with_capacity(rounds);
            let mut hits = 0usize;
            for _ in 0..rounds {
                let query = make(&mut q);
                let t = Instant::now();
                let found = store.search_messages(&query, None, &opts).expect("search");
                times.push(t.elapsed());
                hits += found.len();
            }
            all.extend(times.iter().copied());
            if !name.contains("LIKE") && !name.contains("scan") {
                all_trigram.extend(times.iter().copied());
            }
            let (median, p90, max) = stats(times);
            println!(
                "{name:<26} {:>10} {:>10.1} {median:>6.2}ms {p90:>6.2}ms {max:>6.2}ms",
                format!("{order:?}"),
                hits as f64 / rounds as f64
            );
        }
    }
    let (median, p90, _) = stats(all_trigram);
    println!("trigram queries (3+ chars): median {median:.2} ms, p90 {p90:.2} ms");
    let (median, p90, _) = stats(all);
    println!("all queries: median {median:.2} ms, p90 {p90:.2} ms");
}
