//! This computer as far as running models is concerned: memory (total and available), CPU
//! features and cores, and memory bandwidth, which bounds decoding speed (every generated token
//! reads the whole model once). From those, for a model and a quantization at a context length:
//! whether it fits, is tight, or won't fit, and a predicted decode speed.
//!
//! The bandwidth is measured once (a quarter of a second of `memcpy` on every core) and cached in
//! a small JSON file keyed by the CPU, core count and memory size; [`Hardware::detect`] never
//! measures, [`Hardware::detect_measured`] measures only when the cache is missing or stale.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogEntry;
use crate::quant::Quant;

/// Decoding's effective read speed as a multiple of the measured copy bandwidth. Above 1: the
/// copy figure counts the bytes read and written, and writing costs more than reading (the
/// caches fetch a line before they overwrite it), so a stream that only reads (what decoding
/// does with the weights) runs faster than the copy figure. Calibrated on the test models with
/// Hearth's release build (see docs/models.md for the measurements).
pub const DECODE_EFFICIENCY: f64 = 1.3;

/// Fixed cost per layer and token (hand-overs between threads, norms, attention at a short
/// context), which matters for very small models.
pub const PER_LAYER_SECONDS: f64 = 0.000_035;

/// Memory kept free for the system and other programs when judging a fit.
pub const HEADROOM_BYTES: u64 = 1 << 30;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuFeatures {
    pub avx2: bool,
    pub avx512f: bool,
    pub fma: bool,
    pub f16c: bool,
    pub neon: bool,
}

impl CpuFeatures {
    pub fn detect() -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            Self {
                avx2: std::is_x86_feature_detected!("avx2"),
                avx512f: std::is_x86_feature_detected!("avx512f"),
                fma: std::is_x86_feature_detected!("fma"),
                f16c: std::is_x86_feature_detected!("f16c"),
                neon: false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            Self {
                avx2: false,
                avx512f: false,
                fma: false,
                f16c: false,
                neon: std::arch::is_aarch64_feature_detected!("neon"),
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Self {
                avx2: false,
                avx512f: false,
                fma: false,
                f16c: false,
                neon: false,
            }
        }
    }

    /// Names of the features present, for display.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("AVX2", self.avx2),
            ("AVX-512", self.avx512f),
            ("FMA", self.fma),
            ("F16C", self.f16c),
            ("NEON", self.neon),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect()
    }
}

/// A bandwidth measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Bytes moved per second (read plus written) by a multi-threaded copy.
    pub bytes_per_second: f64,
    pub threads: usize,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu: String,
    pub features: CpuFeatures,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub total_memory: u64,
    pub available_memory: u64,
    pub bandwidth: Option<Bandwidth>,
}

#[derive(Serialize, Deserialize)]
struct CachedBandwidth {
    cpu: String,
    logical_cores: usize,
    total_memory: u64,
    bandwidth: Bandwidth,
}

impl Hardware {
    /// Memory, CPU and cores; no bandwidth measurement.
    pub fn detect() -> Self {
        use sysinfo::{MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::nothing().with_ram())
                .with_cpu(sysinfo::CpuRefreshKind::nothing()),
        );
        let cpu = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self {
            cpu,
            features: CpuFeatures::detect(),
            physical_cores: System::physical_core_count(),
            logical_cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            total_memory: sys.total_memory(),
            available_memory: sys.available_memory(),
            bandwidth: None,
        }
    }

    /// [`Hardware::detect`] plus the bandwidth, from `cache_file` when it describes this machine,
    /// else measured now and written there.
    pub fn detect_measured(cache_file: &Path) -> Self {
        let mut hw = Self::detect();
        let cached: Option<CachedBandwidth> = std::fs::read(cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(c) = cached {
            if c.cpu == hw.cpu
                && c.logical_cores == hw.logical_cores
                && c.total_memory == hw.total_memory
            {
                hw.bandwidth = Some(c.bandwidth);
                return hw;
            }
        }
        let bw = measure_bandwidth(hw.logical_cores, hw.total_memory);
        let record = CachedBandwidth {
            cpu: hw.cpu.clone(),
            logical_cores: hw.logical_cores,
            total_memory: hw.total_memory,
            bandwidth: bw.clone(),
        };
        if let Some(dir) = cache_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(json) = serde_json::to_vec_pretty(&record) {
            let tmp = cache_file.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, cache_file);
            }
        }
        hw.bandwidth = Some(bw);
        hw
    }
}

/// Measures memory bandwidth: each thread copies its own slice of a buffer much larger than the
/// caches; the best of a few rounds counts. Uses `copy_from_slice` (the C library's memcpy), so
/// the result does not depend on how this crate was compiled.
pub fn measure_bandwidth(threads: usize, total_memory: u64) -> Bandwidth {
    let threads = threads.max(1);
    let total = (256u64 << 20).min(total_memory / 16).max(32 << 20) as usize;
    let per = total / threads;
    let mut src: Vec<Vec<u8>> = (0..threads)
        .map(|i| vec![(i as u8).wrapping_add(1); per])
        .collect();
    let mut dst: Vec<Vec<u8>> = (0..threads).map(|_| vec![0u8; per]).collect();
    let mut best = f64::MAX;
    for round in 0..4 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, sv) in dst.iter_mut().zip(src.iter()) {
                s.spawn(move || d.copy_from_slice(sv));
            }
        });
        let secs = t.elapsed().as_secs_f64();
        if round > 0 {
            best = best.min(secs);
        }
        src.rotate_left(1);
    }
    let moved = 2.0 * (per * threads) as f64;
    Bandwidth {
        // Whole bytes: the value survives the JSON cache exactly.
        bytes_per_second: (moved / best.max(1e-9)).round(),
        threads,
        measured_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Measures how fast `threads` threads read memory (bytes per second): each sums its own slice
/// of a buffer much larger than the caches, which it wrote first (so the pages sit near the
/// core that reads them); the best of a few rounds counts. Reading is what decoding a token
/// does with the weights, so this divided by the bytes read per token bounds decoding speed.
pub fn measure_read_bandwidth(threads: usize, total_memory: u64) -> f64 {
    let threads = threads.max(1);
    let total = (1u64 << 30).min(total_memory / 8).max(64 << 20) as usize;
    let per = total / threads / 8;
    let mut best = f64::MAX;
    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); threads];
    std::thread::scope(|s| {
        for (i, p) in parts.iter_mut().enumerate() {
            s.spawn(move || *p = vec![i as u64 + 1; per]);
        }
    });
    for _ in 0..5 {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = parts
                .iter()
                .map(|p| {
                    s.spawn(move || {
                        // Eight running sums: the loop is bound by memory, not by additions.
                        let mut acc = [0u64; 8];
                        for c in p.chunks_exact(8) {
                            for k in 0..8 {
                                acc[k] = acc[k].wrapping_add(c[k]);
                            }
                        }
                        acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        std::hint::black_box(sums);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (per * 8 * threads) as f64 / best.max(1e-9)
}

/// Whether a model fits in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Fits in the memory available now, with a gigabyte to spare.
    Fits,
    /// Fits only if other programs give memory back (or with little to spare).
    Tight,
    /// Needs more memory than this computer has to offer.
    WontFit,
}

impl std::fmt::Display for Fit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fit::Fits => "fits",
            Fit::Tight => "tight",
            Fit::WontFit => "won't fit",
        })
    }
}

/// The size figures a fit and speed estimate rests on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelCost {
    /// Weights in memory (the GGUF file's tensor data).
    pub weight_bytes: u64,
    /// Bytes of weights read for each generated token (the token embedding is read one row at a
    /// time unless it is also the output projection).
    pub bytes_read_per_token: u64,
    /// Key/value cache per token of context.
    pub kv_bytes_per_token: u64,
    /// Vocabulary size (logit buffers).
    pub vocab: u64,
    /// Transformer layers.
    pub layers: u64,
}

impl ModelCost {
    /// Estimate for a catalog entry at `quant` (not downloaded yet).
    pub fn estimate(entry: &CatalogEntry, quant: Quant) -> Self {
        let weight_bytes = entry.estimated_file_bytes(quant);
        let embd = (entry.embedding_parameters() as f64 * quant.bits_per_weight() / 8.0) as u64;
        let bytes_read_per_token = if entry.shape.tied_embeddings {
            weight_bytes
        } else {
            weight_bytes.saturating_sub(embd)
        };
        Self {
            weight_bytes,
            bytes_read_per_token,
            kv_bytes_per_token: entry.kv_bytes_per_token(),
            vocab: entry.shape.vocab as u64,
            layers: entry.shape.layers as u64,
        }
    }

    /// Exact figures for a GGUF file on disk.
    pub fn of_gguf(path: &Path) -> Result<Self, String> {
        use candle_core::quantized::gguf_file::{Content, Value};
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c = Content::read(&mut f).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = |name: &str| -> u64 {
            c.tensor_infos
                .get(name)
                .map(|t| {
                    (t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size())
                        as u64
                })
                .unwrap_or(0)
        };
        let weight_bytes: u64 = c.tensor_infos.keys().map(|n| size(n)).sum();
        let tied = !c.tensor_infos.contains_key("output.weight");
        let bytes_read_per_token = if tied {
            weight_bytes
        } else {
            weight_bytes - size("token_embd.weight")
        };
        let arch = match c.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(format!("{}: no general.architecture", path.display())),
        };
        let uint = |k: &str| -> u64 {
            match c.metadata.get(&format!("{arch}.{k}")) {
                Some(Value::U32(v)) => *v as u64,
                Some(Value::U64(v)) => *v,
                Some(Value::I32(v)) => (*v).max(0) as u64,
                _ => 0,
            }
        };
        let layers = uint("block_count");
        let heads = uint("attention.head_count").max(1);
        let kv_heads = match uint("attention.head_count_kv") {
            0 => heads,
            k => k,
        };
        let head_dim = match uint("attention.key_length") {
            0 => uint("embedding_length") / heads,
            k => k,
        };
        let vocab = c
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0] as u64)
            .unwrap_or(0);
        Ok(Self {
            weight_bytes,
            bytes_read_per_token,
            kv_bytes_per_token: 2 * layers * kv_heads * head_dim * 2,
            vocab,
            layers,
        })
    }

    /// Memory needed at `context` tokens: weights, key/value cache, and working buffers.
    pub fn memory_at(&self, context: u64) -> u64 {
        let working = (150 << 20) + self.vocab * 4 * 4 + self.weight_bytes / 20;
        self.weight_bytes + self.kv_bytes_per_token * context + working
    }
}

/// The verdict for one model at one quantization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub quant: Quant,
    pub context: u64,
    pub memory_needed: u64,
    pub fit: Fit,
    /// Predicted decode speed in tokens per second (None without a bandwidth measurement).
    pub predicted_tokens_per_second: Option<f64>,
}

/// Predicted decode speed: one token takes the time to read its bytes (weights plus, at
/// `context`, the key/value cache) at bandwidth × efficiency, plus a fixed cost per layer.
pub fn predict_decode(bandwidth: &Bandwidth, cost: &ModelCost, context: u64) -> f64 {
    let per_token = (cost.bytes_read_per_token + cost.kv_bytes_per_token * context) as f64;
    let seconds = per_token / (bandwidth.bytes_per_second * DECODE_EFFICIENCY).max(1.0)
        + cost.layers as f64 * PER_LAYER_SECONDS;
    1.0 / seconds
}

impl Hardware {
    pub fn fit(&self, memory_needed: u64) -> Fit {
        if memory_needed + HEADROOM_BYTES <= self.available_memory {
            Fit::Fits
        } else if memory_needed <= self.available_memory
            || memory_needed * 5 <= self.total_memory * 4
        {
            Fit::Tight
        } else {
            Fit::WontFit
        }
    }

    pub fn assess(&self, cost: &ModelCost, quant: Quant, context: u64) -> Assessment {
        let memory_needed = cost.memory_at(context);
        Assessment {
            quant,
            context,
            memory_needed,
            fit: self.fit(memory_needed),
            // Speed at a short conversation: the cache of a few hundred tokens.
            predicted_tokens_per_second: self
                .bandwidth
                .as_ref()
                .map(|b| predict_decode(b, cost, 256.min(context))),
        }
    }

    /// Every quantization of a catalog entry at `context` tokens.
    pub fn assess_entry(&self, entry: &CatalogEntry, context: u64) -> Vec<Assessment> {
        entry
            .available_quants()
            .into_iter()
            .map(|q| self.assess(&ModelCost::estimate(entry, q), q, context))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(total_gib: u64, avail_gib: u64) -> Hardware {
        Hardware {
            cpu: "test".into(),
            features: CpuFeatures::detect(),
            physical_cores: Some(4),
            logical_cores: 8,
            total_memory: total_gib << 30,
            available_memory: avail_gib << 30,
            bandwidth: Some(Bandwidth {
                bytes_per_second: 20e9,
                threads: 8,
                measured_at: 0,
            }),
        }
    }

    #[test]
    fn fit_thresholds() {
        let hw = machine(16, 8);
        assert_eq!(hw.fit(6 << 30), Fit::Fits);
        assert_eq!(hw.fit(15 << 29), Fit::Tight); // 7.5 GiB: under available, not a GiB spare
        assert_eq!(hw.fit(12 << 30), Fit::Tight); // fits in 80% of the total
        assert_eq!(hw.fit(14 << 30), Fit::WontFit);
    }

    #[test]
    fn catalog_entries_get_sensible_verdicts() {
        let catalog = crate::Catalog::builtin().unwrap();
        let small = catalog.get("qwen2.5-0.5b-instruct").unwrap();
        let big = catalog.get("qwen3-4b").unwrap();
        let laptop = machine(8, 5);
        let a = laptop.assess_entry(small, 4096);
        assert!(a.iter().all(|x| x.fit == Fit::Fits));
        let b = laptop.assess_entry(big, 32768);
        let q8 = b.iter().find(|x| x.quant == Quant::Q8_0).unwrap();
        assert_eq!(
            q8.fit,
            Fit::WontFit,
            "4B at Q8_0 with a 32K context on an 8 GB laptop: {q8:?}"
        );
        // Smaller quantizations are predicted faster.
        let speed = |q| {
            b.iter()
                .find(|x| x.quant == q)
                .unwrap()
                .predicted_tokens_per_second
                .unwrap()
        };
        assert!(speed(Quant::Q4KM) > speed(Quant::Q8_0));
        assert!(a[0].predicted_tokens_per_second.unwrap() > speed(Quant::Q4KM));
    }

    #[test]
    fn bandwidth_is_measured_once_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hardware.json");
        let first = Hardware::detect_measured(&cache);
        let bw = first.bandwidth.clone().unwrap();
        assert!(bw.bytes_per_second > 1e8, "{bw:?}");
        assert!(first.total_memory > 0 && first.available_memory > 0 && first.logical_cores > 0);
        let second = Hardware::detect_measured(&cache);
        assert_eq!(
            second.bandwidth,
            Some(bw),
            "read from the cache, not measured again"
        );
    }
}
