//! Microbenchmark: Hearth's quantized matrix kernels against candle's `QMatMul` on the matrices
//! of a GGUF file, one token at a time (decode) or several at once (a prompt), alternating the
//! two in one process so that background load hits both alike.
//!
//! `cargo run --release -p hearth-engine --example kernel_bench -- MODEL.gguf [THREADS] [REPS] [TOKENS]`
//!
//! Prints, per tensor kind (attn_q, ffn_up, output, ...) and in total, the median time of one
//! pass over all matrices of that kind with candle, with Hearth's best kernels and with Hearth's
//! scalar kernels, and the ratios.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use hearth_engine::kernels::{Isa, QMatrix};

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
    let mut mats: Vec<(String, QMatMul, QMatrix, Tensor)> = Vec::new();
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
        mats.push((kind, QMatMul::from_arc(q)?, own, x));
    }
    let best = Isa::best();
    // Warm up: page in the weights and start the pool.
    for (_, c, o, x) in &mats {
        c.forward(x)?;
        o.forward_with(best, x)?;
    }
    let mut times: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    let mut totals: [Vec<f64>; 3] = Default::default();
    for rep in 0..reps {
        let mut order = [0usize, 1, 2];
        if rep % 2 == 1 {
            order.reverse();
        }
        for which in order {
            let mut per_kind: BTreeMap<&str, f64> = BTreeMap::new();
            let t_all = Instant::now();
            for (kind, c, o, x) in &mats {
                let t = Instant::now();
                let y = match which {
                    0 => c.forward(x)?,
                    1 => o.forward_with(best, x)?,
                    _ => o.forward_with(Isa::Scalar, x)?,
                };
                std::hint::black_box(y);
                *per_kind.entry(kind).or_default() += t.elapsed().as_secs_f64();
            }
            totals[which].push(t_all.elapsed().as_secs_f64());
            for (k, v) in per_kind {
                times.entry(k.to_string()).or_default()[which].push(v);
            }
        }
    }
    println!(
        "{path}: {threads} thread(s), {tokens} token(s) per call, {reps} alternated reps, best = {best:?}; median ms per call"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "kind", "candle", "hearth", "scalar", "candle/hearth", "candle/scalar"
    );
    let row = |k: &str, t: &mut [Vec<f64>; 3]| {
        let (c, o, s) = (median(&mut t[0]), median(&mut t[1]), median(&mut t[2]));
        println!(
            "{k:<22} {:>9.3} {:>9.3} {:>9.3} {:>12.2} {:>12.2}",
            c * 1e3,
            o * 1e3,
            s * 1e3,
            c / o,
            c / s
        );
    };
    for (k, t) in times.iter_mut() {
        row(k, t);
    }
    row("all covered", &mut totals);
    Ok(())
}
