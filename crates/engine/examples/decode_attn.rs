//! Microbenchmark: one decoded token's attention, layer after layer, with each layer's own
//! f16 key/value cache (as a decoding step meets them: the layers' caches together are larger
//! than the CPU's caches at long context, so each layer's rows come from memory), width 64.
//!
//! `cargo run --release -p hearth-engine --example decode_attn -- THREADS DEPTH ITERS [HEADS KV_HEADS [QUERIES]]`
//!
//! HEADS and KV_HEADS default to SmolLM2-135M's 9 over 3 (30 layers); any other shape runs 24
//! layers (Qwen2.5-0.5B: 14 over 2). `LAYERS=N` sets the number of layers (`LAYERS=1`: one
//! layer's cache, which stays in the CPU's caches: the loops' own speed). Prints the mean time
//! of one layer's `attend_one` over DEPTH + 1 positions, or with QUERIES above 1 (speculative
//! decoding's guesses checked in one pass) `attend` for that many queries, the last at position
//! DEPTH. `HEARTH_KERNELS=avx2` runs the AVX2 loops on a CPU with AVX-512.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use hearth_engine::attention::{attend, attend_one, Window};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (threads, depth, iters) = (arg(1, 2)?, arg(2, 2000)?, arg(3, 50)?);
    let (nh, nkv, hd) = (arg(4, 9)?, arg(5, 3)?, 64);
    let queries = arg(6, 1)?.clamp(1, depth + 1);
    let layers = match std::env::var("LAYERS") {
        Ok(n) => n.parse::<usize>()?.max(1),
        Err(_) if (nh, nkv) == (9, 3) => 30,
        Err(_) => 24,
    };
    hearth_engine::compute_threads(threads);
    let dev = Device::Cpu;
    let cache = || -> candle_core::Result<Vec<Tensor>> {
        (0..layers)
            .map(|_| Tensor::randn(0f32, 1.0, (1, nkv, depth + 1, hd), &dev)?.to_dtype(DType::F16))
            .collect()
    };
    let (ks, vs) = (cache()?, cache()?);
    let qs = Tensor::randn(0f32, 1.0, (1, nh, queries, hd), &dev)?;
    let q = qs
        .narrow(2, queries - 1, 1)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut out = vec![0f32; nh * hd];
    let scale = 1.0 / (hd as f32).sqrt();
    let t0 = Instant::now();
    for _ in 0..iters {
        for (k, v) in ks.iter().zip(&vs) {
            if queries == 1 {
                attend_one(&q, k, v, depth + 1, scale, Window { size: None }, &mut out)?;
            } else {
                attend(&qs, k, v, scale, Window { size: None })?;
            }
        }
    }
    println!(
        "{nh} heads over {nkv}, {threads} thread(s), {queries} quer{} over {} positions: {:.2} us per layer",
        if queries == 1 { "y" } else { "ies" },
        depth + 1,
        t0.elapsed().as_secs_f64() * 1e6 / (iters * layers) as f64
    );
    Ok(())
}
