//! Microbenchmark: the attention over an f16 key/value cache at long context, for the head
//! shapes of SmolLM2-135M (9 query heads over 3 key/value heads) and Qwen2.5-0.5B (14 over 2),
//! width 64.
//!
//! `cargo run --release -p hearth-engine --example attention_bench -- [THREADS] [DEPTH] [REPS]`
//!
//! Prints the median time of one layer's attention for a whole prompt of DEPTH tokens run in
//! steps of 512 (as the engine runs a prompt), and for one decoded token after DEPTH tokens:
//! through tensors (a query tensor, views of the cache, a result tensor read back) and on plain
//! buffers (`attend_one`, as a decoding step runs it).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use hearth_engine::attention::{attend, attend_one, Window};

/// Tokens in a chat's next message (a question and the chat template around it).
const NEW: usize = 18;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let depth: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    hearth_engine::compute_threads(threads);
    let dev = Device::Cpu;
    for (name, nh, nkv) in [("SmolLM2-135M", 9usize, 3usize), ("Qwen2.5-0.5B", 14, 2)] {
        let hd = 64;
        let scale = 1.0 / (hd as f32).sqrt();
        let k = Tensor::randn(0f32, 1.0, (1, nkv, depth + 1, hd), &dev)?.to_dtype(DType::F16)?;
        let v = Tensor::randn(0f32, 1.0, (1, nkv, depth + 1, hd), &dev)?.to_dtype(DType::F16)?;
        let q = Tensor::randn(0f32, 1.0, (1, nh, depth + 1, hd), &dev)?;
        let mut prompt = Vec::new();
        let mut decode = Vec::new();
        let mut turn = Vec::new();
        let (mut tensors, mut buffers) = (Vec::new(), Vec::new());
        let qrow = q.narrow(2, depth, 1)?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; nh * hd];
        for _ in 0..reps {
            let t0 = Instant::now();
            let mut at = 0;
            while at < depth {
                let n = 256.min(depth - at);
                let (kk, vv) = (k.narrow(2, 0, at + n)?, v.narrow(2, 0, at + n)?);
                attend(&q.narrow(2, at, n)?, &kk, &vv, scale, Window { size: None })?;
                at += n;
            }
            prompt.push(t0.elapsed().as_secs_f64() * 1e3);
            let t0 = Instant::now();
            for _ in 0..20 {
                attend(
                    &q.narrow(2, depth, 1)?,
                    &k,
                    &v,
                    scale,
                    Window { size: None },
                )?;
            }
            decode.push(t0.elapsed().as_secs_f64() * 1e3 / 20.0);
            // A chat's next message: NEW queries after DEPTH tokens already in the cache.
            let at = depth + 1 - NEW.min(depth + 1);
            let t0 = Instant::now();
            for _ in 0..20 {
                attend(
                    &q.narrow(2, at, depth + 1 - at)?,
                    &k,
                    &v,
                    scale,
                    Window { size: None },
                )?;
            }
            turn.push(t0.elapsed().as_secs_f64() * 1e3 / 20.0);
            let t0 = Instant::now();
            for _ in 0..20 {
                // The query of one step as a decoding step holds it, then the whole step.
                let qt = Tensor::from_slice(&qrow, (1, nh, 1, hd), &dev)?;
                let (kk, vv) = (k.narrow(2, 0, depth + 1)?, v.narrow(2, 0, depth + 1)?);
                let y = attend(&qt, &kk, &vv, scale, Window { size: None })?;
                out.copy_from_slice(&y.flatten_all()?.to_vec1::<f32>()?);
            }
            tensors.push(t0.elapsed().as_secs_f64() * 1e6 / 20.0);
            let t0 = Instant::now();
            for _ in 0..20 {
                attend_one(
                    &qrow,
                    &k,
                    &v,
                    depth + 1,
                    scale,
                    Window { size: None },
                    &mut out,
                )?;
            }
            buffers.push(t0.elapsed().as_secs_f64() * 1e6 / 20.0);
        }
        println!(
            "{name} ({nh} heads over {nkv}), {threads} thread(s): prompt of {depth} tokens {:.1} ms per layer, one token at depth {depth} {:.3} ms per layer",
            median(&mut prompt),
            median(&mut decode)
        );
        println!(
            "  a chat's next message of {NEW} tokens after {} in the cache: {:.3} ms per layer",
            depth + 1 - NEW.min(depth + 1),
            median(&mut turn)
        );
        println!(
            "  one decoding step from a query row to an output row: through tensors {:.2} us, on buffers {:.2} us",
            median(&mut tensors),
            median(&mut buffers)
        );
    }
    Ok(())
}
