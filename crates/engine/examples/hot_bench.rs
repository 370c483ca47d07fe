//! Microbenchmark: what Hearth's kernels reach on one token when the weights are already in the
//! core's caches, per type and instruction set: the ceiling their instructions set, next to the
//! memory bandwidth (`hearth bandwidth`) that decoding a model from RAM can reach at best. A type
//! whose figure here is not well above that bandwidth is bound by instructions when decoding.
//!
//! `cargo run --release -p hearth-engine --example hot_bench -- [ROWS] [COLS] [CALLS]`
//!
//! The matrix (ROWS × COLS, default 1024 × 1024: 0.6–1.1 MB, about one core's L2) is quantized
//! from normally distributed values, one thread runs CALLS products (default 2,000) after a
//! warm-up, and the mean time per product is printed with the bytes it read per second. Q4_0,
//! Q4_1, Q5_0, Q8_0 and the k-quants are also run held interleaved (`QMatrix::interleaved`) with
//! each instruction set whose kernels the model gives that layout (`prefers_interleaved`).

use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use hearth_engine::kernels::{prefers_interleaved, Isa, QMatrix};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (rows, cols, calls) = (arg(1, 1024)?, arg(2, 1024)?, arg(3, 2000)?.max(1));
    if rows == 0 || cols == 0 || cols % 256 != 0 {
        return Err("ROWS must be at least 1 and COLS a multiple of 256".into());
    }
    hearth_engine::compute_threads(1);
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 7919) % 100) as f32 / 50.0 - 1.0)
        .collect();
    let mut out = vec![0f32; rows];
    println!("type  instruction set  matrix  bytes  µs per product  GB/s");
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let w = Tensor::randn(0f32, 1.0, (rows, cols), &Device::Cpu)?;
        let q = QTensor::quantize(&w, dtype)?;
        let bytes = q.storage_size_in_bytes();
        let q = Arc::new(q);
        let plain = QMatrix::new(q.clone()).ok_or("no Hearth kernel for this type")?;
        // The layout the model keeps a matrix in where the x86 single-token kernels run.
        let inter = QMatrix::interleaved(q).filter(|m| m.is_interleaved());
        let runs = Isa::supported()
            .into_iter()
            .map(|isa| (isa, &plain, ""))
            .chain(Isa::supported().into_iter().filter_map(|isa| {
                let m = inter.as_ref()?;
                prefers_interleaved(isa, m.block_type()).then_some((isa, m, " interleaved"))
            }));
        for (isa, m, layout) in runs {
            // The portable path is far slower: fewer calls keep the run short.
            let n = if isa == Isa::Scalar {
                calls / 20 + 1
            } else {
                calls
            };
            for _ in 0..n / 10 + 1 {
                m.matmul(isa, &x, &mut out)?;
            }
            let t = Instant::now();
            for _ in 0..n {
                m.matmul(isa, &x, &mut out)?;
            }
            let s = t.elapsed().as_secs_f64() / n as f64;
            println!(
                "{dtype:?}  {isa:?}{layout}  {rows}x{cols}  {bytes}  {:.2}  {:.1}",
                s * 1e6,
                bytes as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
