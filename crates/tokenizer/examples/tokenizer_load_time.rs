//! Measures how long building a tokenizer from a GGUF file takes.
//!
//! `cargo run -p hearth-tokenizer --example tokenizer_load_time -- MODEL.gguf [RUNS]`

use std::path::PathBuf;
use std::time::Instant;

use hearth_tokenizer::GgufTokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: tokenizer_load_time MODEL.gguf [RUNS]")?,
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let mut times = Vec::with_capacity(runs);
    let cpu_start = cpu_ms();
    let mut vocab_size = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let tok = GgufTokenizer::load(&path)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        vocab_size = tok.vocab_size();
    }
    let cpu = cpu_ms()
        .zip(cpu_start)
        .map(|(end, start)| (end - start) / runs as f64);
    times.sort_by(f64::total_cmp);
    println!(
        "{}: {} tokens, load min {:.0} ms, median {:.0} ms over {} runs",
        path.display(),
        vocab_size,
        times[0],
        times[times.len() / 2],
        runs
    );
    if let Some(cpu) = cpu {
        println!("CPU time per load (all threads): {cpu:.0} ms");
    }
    Ok(())
}

/// User + system CPU time of this process so far (Linux only).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}
