//! Microbenchmark: Hearth's quantized matrix kernels against candle's `QMatMul` on the matrices
//! of a GGUF file, one token at a time (decode) or several at once (a prompt), alternating the
//! two in one process so that background load hits both alike.
//!
//! `cargo run --release -p hearth-engine --example kernel_bench -- MODEL.gguf [THREADS] [REPS] [TOKENS]`
//!
//! Prints, per tensor kind (attn_q, ffn_up, output, ...) and in total, the median time of one
//! pass over all matrices of that kind with candle and with Hearth's kernels on every instruction
//! set this CPU supports, and candle's time divided by each; for the instruction sets whose
//! kernels the model gives matrices interleaved (`prefers_interleaved`), also with the matrices
//! held as the model holds them (the columns marked `x8`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use hearth_engine::kernels::{prefers_interleaved, Isa, QMatrix};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: kernel_bench MODEL.gguf [THREADS] [REPS]")?;
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(15);
    let tokens: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    hearth_engine::compute_threads(threads);

    let mut f = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut f)?;
    let has_output = content.tensor_infos.contains_key("output.weight");
    let mut mats: Vec<(String, QMatMul, QMatrix, Option<QMatrix>, Tensor)> = Vec::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        if info.shape.dims().len() != 2 || (name == "token_embd.weight" && has_output) {
            continue;
        }
        let q: Arc<QTensor> =
            Arc::new(info.read(&mut f, content.tensor_data_offset, &Device::Cpu)?);
        let Some(own) = QMatrix::new(q.clone()) else {
            continue;
        };
        let kind = if name == "token_embd.weight" {
            "output (tied)".to_string()
        } else {
            let parts: Vec<&str> = name.split('.').collect();
            format!("{} {:?}", parts[parts.len() - 2], own.block_type())
        };
        let x = Tensor::randn(0f32, 1.0, (1, tokens, own.cols()), &Device::Cpu)?;
        let inter = QMatrix::interleaved(q.clone()).filter(QMatrix::is_interleaved);
        mats.push((kind, QMatMul::from_arc(q)?, own, inter, x));
    }
    // Columns: candle, then every instruction set this CPU supports with the matrices as GGUF
    // has them, then those that the model gives some matrices interleaved, held that way.
    let mut isas: Vec<(Isa, bool)> = Isa::supported().into_iter().map(|i| (i, false)).collect();
    for i in Isa::supported() {
        if mats
            .iter()
            .any(|(_, _, o, n, _)| n.is_some() && prefers_interleaved(i, o.block_type()))
        {
            isas.push((i, true));
        }
    }
    let cols = 1 + isas.len();
    let label = |(i, x8): &(Isa, bool)| format!("{i:?}{}", if *x8 { " x8" } else { "" });
    // Warm up: page in the weights and start the pool.
    for (_, c, o, n, x) in &mats {
        c.forward(x)?;
        o.forward_with(Isa::best(), x)?;
        if let Some(n) = n {
            n.forward_with(Isa::best(), x)?;
        }
    }
    let mut times: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    let mut totals: Vec<Vec<f64>> = vec![Vec::new(); cols];
    for rep in 0..reps {
        let mut order: Vec<usize> = (0..cols).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for which in order {
            let mut per_kind: BTreeMap<&str, f64> = BTreeMap::new();
            let t_all = Instant::now();
            for (kind, c, o, n, x) in &mats {
                let t = Instant::now();
                let y = match which {
                    0 => c.forward(x)?,
                    k => {
                        let (isa, x8) = isas[k - 1];
                        match n {
                            Some(n) if x8 && prefers_interleaved(isa, o.block_type()) => {
                                n.forward_with(isa, x)?
                            }
                            _ => o.forward_with(isa, x)?,
                        }
                    }
                };
                std::hint::black_box(y);
                *per_kind.entry(kind).or_default() += t.elapsed().as_secs_f64();
            }
            totals[which].push(t_all.elapsed().as_secs_f64());
            for (k, v) in per_kind {
                times
                    .entry(k.to_string())
                    .or_insert_with(|| vec![Vec::new(); cols])[which]
                    .push(v);
            }
        }
    }
    println!(
        "{path}: {threads} thread(s), {tokens} token(s) per call, {reps} alternated reps; median ms per call, and candle's time divided by each"
    );
    let mut head = format!("{:<22} {:>9}", "kind", "candle");
    for i in &isas {
        head.push_str(&format!(" {:>14}", label(i)));
    }
    for i in &isas {
        head.push_str(&format!(" {:>14}", format!("÷{}", label(i))));
    }
    println!("{head}");
    let row = |k: &str, t: &mut Vec<Vec<f64>>| {
        let med: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
        let mut line = format!("{k:<22} {:>9.3}", med[0] * 1e3);
        for m in &med[1..] {
            line.push_str(&format!(" {:>14.3}", m * 1e3));
        }
        for m in &med[1..] {
            line.push_str(&format!(" {:>14.2}", med[0] / m));
        }
        println!("{line}");
    };
    for (k, t) in times.iter_mut() {
        row(k, t);
    }
    row("all covered", &mut totals);
    Ok(())
}
