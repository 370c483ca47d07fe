//! Reading a GGUF model file: the header and metadata, the architecture's hyper-parameters, and
//! its tensors, each checked against the shape the architecture expects. A truncated or damaged
//! file is reported as [`EngineError::CorruptModel`], never as a panic.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::error::{EngineError, Result};

/// Model families the engine can run. Each maps to one transformer layout in [`crate::model`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            "phi3" => Arch::Phi3,
            other => return Err(EngineError::UnsupportedArchitecture(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
        }
    }
}

/// Hyper-parameters read from `{arch}.*` metadata keys.
#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub rope_dim: usize,
    pub rope_base: f32,
    /// Rope base of sliding-window layers where it differs (Gemma 3: 10,000).
    pub rope_base_local: f32,
    /// Linear rope scaling factor (positions are divided by it); 1.0 when none.
    pub rope_linear_scale: f32,
    pub rms_eps: f64,
    pub context_len: usize,
    /// Sliding-window length for the layers that use one.
    pub sliding_window: Option<usize>,
    pub vocab_size: usize,
}

impl Config {
    /// Whether layer `il` attends only within the sliding window.
    pub fn is_sliding(&self, il: usize) -> bool {
        match (self.arch, self.sliding_window) {
            // Gemma 3: five local layers, then one global.
            (Arch::Gemma3, Some(_)) => il % 6 < 5,
            _ => false,
        }
    }
}

/// An open GGUF file: metadata parsed, tensors read on demand (from a memory map of the file
/// where the system allows one, else with reads). Tensors may be read from several threads.
pub struct ModelFile {
    pub path: PathBuf,
    pub content: Content,
    reader: Mutex<BufReader<File>>,
    /// The whole file mapped read-only: a tensor is copied once, straight from the page cache,
    /// into the memory the model keeps (no read buffer in between). Dropped with the
    /// `ModelFile`, once the model is loaded.
    map: Option<memmap2::Mmap>,
    pub file_size: u64,
}

impl ModelFile {
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(EngineError::NotGguf {
                path: path.to_path_buf(),
            });
        }
        reader.rewind().map_err(io)?;
        let content = Content::read(&mut reader).map_err(|e| {
            let reason = e.to_string();
            match unknown_type_id(&reason) {
                Some(id) => EngineError::UnsupportedTensorType {
                    tensor: "(one or more tensors)".to_string(),
                    dtype: ggml_type_name(id),
                },
                None => EngineError::CorruptModel {
                    path: path.to_path_buf(),
                    reason,
                },
            }
        })?;
        // SAFETY: the map is only read, and only while the model loads; the file is the user's
        // model, which nothing else is expected to shorten meanwhile (a file cut short under a
        // map is the one case a read path would report instead of failing).
        let map = unsafe { memmap2::MmapOptions::new().map(reader.get_ref()) }.ok();
        #[cfg(unix)]
        if let Some(m) = &map {
            let _ = m.advise(memmap2::Advice::Sequential);
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
            reader: Mutex::new(reader),
            map,
            file_size,
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> EngineError {
        EngineError::CorruptModel {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.content.metadata.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// An integer metadata value of any integer width.
    pub fn get_uint(&self, key: &str) -> Option<u64> {
        match self.content.metadata.get(key)? {
            Value::U8(v) => Some(*v as u64),
            Value::U16(v) => Some(*v as u64),
            Value::U32(v) => Some(*v as u64),
            Value::U64(v) => Some(*v),
            Value::I8(v) if *v >= 0 => Some(*v as u64),
            Value::I16(v) if *v >= 0 => Some(*v as u64),
            Value::I32(v) if *v >= 0 => Some(*v as u64),
            Value::I64(v) if *v >= 0 => Some(*v as u64),
            // Some converters write per-layer arrays for values that are the same on every layer.
            Value::Array(vs) => match vs.first() {
                Some(Value::U32(v)) => Some(*v as u64),
                Some(Value::I32(v)) if *v >= 0 => Some(*v as u64),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn get_float(&self, key: &str) -> Option<f64> {
        match self.content.metadata.get(key)? {
            Value::F32(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            _ => None,
        }
    }

    fn need_uint(&self, key: &str) -> Result<usize> {
        let v = self
            .get_uint(key)
            .ok_or_else(|| self.corrupt(format!("the metadata key `{key}` is missing")))?;
        usize::try_from(v).map_err(|_| self.corrupt(format!("`{key}` is out of range")))
    }

    pub fn architecture_name(&self) -> Result<&str> {
        self.get_str("general.architecture")
            .ok_or_else(|| self.corrupt("the metadata key `general.architecture` is missing"))
    }

    pub fn config(&self) -> Result<Config> {
        let arch = Arch::from_name(self.architecture_name()?)?;
        let a = arch.name();
        let n_layer = self.need_uint(&format!("{a}.block_count"))?;
        let n_embd = self.need_uint(&format!("{a}.embedding_length"))?;
        let n_head = self.need_uint(&format!("{a}.attention.head_count"))?;
        let n_head_kv = self
            .get_uint(&format!("{a}.attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(n_head);
        let n_ff = self.need_uint(&format!("{a}.feed_forward_length"))?;
        if n_layer == 0 || n_layer > 1024 || n_embd == 0 || n_head == 0 || n_head_kv == 0 {
            return Err(self.corrupt("implausible layer, embedding or head counts"));
        }
        if n_head % n_head_kv != 0 {
            return Err(self.corrupt(format!(
                "{n_head} attention heads cannot be grouped over {n_head_kv} key/value heads"
            )));
        }
        let head_dim = match self.get_uint(&format!("{a}.attention.key_length")) {
            Some(v) => v as usize,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => return Err(self.corrupt("the head size cannot be derived")),
        };
        let rope_dim = self
            .get_uint(&format!("{a}.rope.dimension_count"))
            .map(|v| v as usize)
            .unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(self.corrupt(format!(
                "rope dimension {rope_dim} does not fit heads of {head_dim}"
            )));
        }
        let rope_base = self
            .get_float(&format!("{a}.rope.freq_base"))
            .unwrap_or(10_000.0) as f32;
        let rope_linear_scale = match self.get_str(&format!("{a}.rope.scaling.type")) {
            Some("linear") => self
                .get_float(&format!("{a}.rope.scaling.factor"))
                .filter(|f| *f > 0.0)
                .unwrap_or(1.0) as f32,
            _ => 1.0,
        };
        let rms_eps = self
            .get_float(&format!("{a}.attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6);
        let context_len = self
            .get_uint(&format!("{a}.context_length"))
            .map(|v| v as usize)
            .unwrap_or(2048);
        let sliding_window = self
            .get_uint(&format!("{a}.attention.sliding_window"))
            .map(|v| v as usize)
            .filter(|v| *v > 0);
        let vocab_size = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.shape.dims().first().copied())
            .ok_or_else(|| self.corrupt("the tensor `token_embd.weight` is missing"))?;
        Ok(Config {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            rope_dim,
            rope_base,
            rope_base_local: if arch == Arch::Gemma3 {
                10_000.0
            } else {
                rope_base
            },
            rope_linear_scale,
            rms_eps,
            context_len,
            sliding_window,
            vocab_size,
        })
    }

    /// Reads tensors with file reads from now on instead of through the memory map: the path
    /// taken where the system cannot map the file (or a tensor is not aligned for it).
    pub fn without_map(mut self) -> Self {
        self.map = None;
        self
    }

    /// Whether tensors are read through a memory map of the file.
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Where tensor `name` is: its type, and its bytes' range in the map where the file is
    /// mapped and the data is aligned for reading in place (GGUF aligns tensor data to 32
    /// bytes; a file that does not is read the slow way). Checks the shape, the type and that
    /// the bytes lie inside the file.
    fn locate(&self, name: &str, shape: &[usize]) -> Result<(&TensorInfo, Option<Range<usize>>)> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.corrupt(format!("the tensor `{name}` is missing")))?;
        if info.shape.dims() != shape {
            return Err(self.corrupt(format!(
                "the tensor `{name}` has shape {:?}, expected {:?}",
                info.shape.dims(),
                shape
            )));
        }
        match info.ggml_dtype {
            GgmlDType::F32
            | GgmlDType::F16
            | GgmlDType::BF16
            | GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q5_0
            | GgmlDType::Q5_1
            | GgmlDType::Q8_0
            | GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
            | GgmlDType::Q8K => {}
            other => {
                return Err(EngineError::UnsupportedTensorType {
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        }
        let Some(map) = &self.map else {
            return Ok((info, None));
        };
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if elems % block != 0 {
            return Err(self.corrupt(format!(
                "the tensor `{name}` has {elems} values, not a whole number of blocks of {block}"
            )));
        }
        let bytes = elems / block * info.ggml_dtype.type_size();
        let offset = self.content.tensor_data_offset;
        let start = usize::try_from(offset.saturating_add(info.offset)).unwrap_or(usize::MAX);
        let end = start.saturating_add(bytes);
        if end > map.len() {
            return Err(self.corrupt(format!(
                "the tensor `{name}` needs bytes {start}..{end}, the file has {}",
                map.len()
            )));
        }
        // The blocks are read in place as candle's block structs (alignment up to 4).
        Ok((info, (start % 8 == 0).then_some(start..end)))
    }

    /// Lets the mapped pages of `range` go once a copy of them is made: they need not count
    /// against this process any more (they stay in the page cache), so the peak is the model,
    /// not twice it.
    fn release(&self, range: Range<usize>) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            // SAFETY: the map is a read-only view of a file; dropping its pages only means a
            // later read faults them in again from the file.
            unsafe {
                let _ = map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.len(),
                );
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// Reads a tensor and checks its shape (`[rows, cols]` in the order candle uses).
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<QTensor> {
        let (info, range) = self.locate(name, shape)?;
        let cannot = |e: candle_core::Error| {
            self.corrupt(format!("the tensor `{name}` cannot be read: {e}"))
        };
        if let (Some(map), Some(range)) = (&self.map, range) {
            let q = qtensor_from_ggml(
                info.ggml_dtype,
                &map[range.clone()],
                shape.to_vec(),
                &Device::Cpu,
            )
            .map_err(cannot)?;
            self.release(range);
            return Ok(q);
        }
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        info.read(&mut *reader, self.content.tensor_data_offset, &Device::Cpu)
            .map_err(cannot)
    }

    /// `make` run on tensor `name`'s bytes as the file holds them, read in place from the map
    /// (no copy), for a caller that makes its own copy in its own layout. `None` where the file
    /// is not mapped or the data is not aligned (read it with [`ModelFile::tensor`] then), or
    /// where `make` gives nothing; when `make` gives a value, the mapped pages are let go as
    /// [`ModelFile::tensor`] lets them go.
    pub fn with_mapped<R>(
        &self,
        name: &str,
        shape: &[usize],
        make: impl FnOnce(GgmlDType, &[u8]) -> Option<R>,
    ) -> Result<Option<R>> {
        let (info, range) = self.locate(name, shape)?;
        let (Some(map), Some(range)) = (&self.map, range) else {
            return Ok(None);
        };
        let made = make(info.ggml_dtype, &map[range.clone()]);
        if made.is_some() {
            self.release(range);
        }
        Ok(made)
    }

    /// The quantization label people know the file by (`Q4_K_M`, `Q8_0`, ...).
    pub fn quant_label(&self) -> String {
        if let Some(ft) = self.get_uint("general.file_type") {
            let label = match ft {
                0 => "F32",
                1 => "F16",
                2 => "Q4_0",
                3 => "Q4_1",
                7 => "Q8_0",
                8 => "Q5_0",
                9 => "Q5_1",
                10 => "Q2_K",
                11 => "Q3_K_S",
                12 => "Q3_K_M",
                13 => "Q3_K_L",
                14 => "Q4_K_S",
                15 => "Q4_K_M",
                16 => "Q5_K_S",
                17 => "Q5_K_M",
                18 => "Q6_K",
                32 => "BF16",
                _ => "",
            };
            if !label.is_empty() {
                return label.to_string();
            }
        }
        // Otherwise the type holding the most parameters.
        let mut by_type: HashMap<String, u64> = HashMap::new();
        for info in self.content.tensor_infos.values() {
            let n = element_count(info.shape.dims());
            let e = by_type.entry(format!("{:?}", info.ggml_dtype)).or_default();
            *e = e.saturating_add(n);
        }
        by_type
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(t, _)| t.to_uppercase())
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// Number of parameters over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.content
            .tensor_infos
            .values()
            .map(|t| element_count(t.shape.dims()))
            .fold(0u64, u64::saturating_add)
    }
}

impl ModelFile {
    /// Bytes of weights one decoded token reads: every tensor, except that of the token
    /// embedding table only one row is read when the file has a separate output matrix. Memory
    /// bandwidth divided by this bounds decoding speed.
    pub fn decode_bytes_per_token(&self) -> u64 {
        let infos = &self.content.tensor_infos;
        let bytes = |t: &TensorInfo| {
            let n = element_count(t.shape.dims());
            let bs = t.ggml_dtype.block_size() as u64;
            n / bs.max(1) * t.ggml_dtype.type_size() as u64
        };
        let all: u64 = infos.values().map(bytes).fold(0u64, u64::saturating_add);
        match (
            infos.get("token_embd.weight"),
            infos.contains_key("output.weight"),
        ) {
            (Some(embd), true) => {
                let rows = embd.shape.dims().first().copied().unwrap_or(1) as u64;
                let table = bytes(embd);
                all - table + table / rows.max(1)
            }
            _ => all,
        }
    }
}

/// Elements in a tensor of these dimensions; saturates instead of overflowing on damaged headers.
fn element_count(dims: &[usize]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, d| acc.saturating_mul(*d as u64))
}

/// The GGML type id in candle's "unknown dtype for tensor N" message, if that is the error.
fn unknown_type_id(message: &str) -> Option<u32> {
    message
        .split("unknown dtype for tensor ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Names of GGML tensor types by id, for messages about types the engine cannot run.
fn ggml_type_name(id: u32) -> String {
    let name = match id {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("GGML type {id}"),
    };
    name.to_string()
}
