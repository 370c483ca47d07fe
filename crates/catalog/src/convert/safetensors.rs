//! Reading a Hugging Face safetensors model: one `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. Only headers are parsed up front; tensor data is read on
//! demand, a range of rows at a time, with plain file reads (no memory map), so reading a tensor
//! costs memory only for the rows asked for.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::DType;

use super::ConvertError;

/// Element types the converter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StDtype {
    F32,
    F16,
    BF16,
}

impl StDtype {
    pub fn size(self) -> usize {
        match self {
            StDtype::F32 => 4,
            StDtype::F16 | StDtype::BF16 => 2,
        }
    }

    pub fn candle(self) -> DType {
        match self {
            StDtype::F32 => DType::F32,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
        }
    }
}

/// Where one tensor's bytes are.
#[derive(Clone, Debug)]
pub struct StTensor {
    pub dtype: StDtype,
    pub shape: Vec<usize>,
    file: usize,
    /// Absolute offset of the first byte in its file.
    start: u64,
}

impl StTensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// `(rows, cols)` with every dimension after the first folded into columns.
    pub fn rows_cols(&self) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [n] => (1, *n),
            [r, rest @ ..] => (*r, rest.iter().product()),
        }
    }
}

/// All tensors of a model folder.
pub struct SafetensorsModel {
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, StTensor>,
}

fn bad(path: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError::InvalidModel {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SafetensorsModel {
    /// Opens `dir/model.safetensors.index.json` if present, else every `*.safetensors` file.
    pub fn open(dir: &Path) -> Result<Self, ConvertError> {
        let index = dir.join("model.safetensors.index.json");
        let mut files: Vec<PathBuf> = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(&index, e.to_string()))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| bad(&index, "no `weight_map`"))?;
            let mut names: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            names.sort();
            names.dedup();
            for n in &names {
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    return Err(bad(&index, format!("unsafe shard name `{n}`")));
                }
            }
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            let rd = std::fs::read_dir(dir).map_err(io_err(dir))?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("safetensors"))
                .collect();
            v.sort();
            v
        };
        if files.is_empty() {
            return Err(bad(dir, "no .safetensors files"));
        }
        files.dedup();
        let mut tensors = BTreeMap::new();
        for (i, path) in files.iter().enumerate() {
            for (name, t) in read_header(path, i)? {
                if tensors.insert(name.clone(), t).is_some() {
                    return Err(bad(path, format!("tensor `{name}` appears in two shards")));
                }
            }
        }
        Ok(Self { files, tensors })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&StTensor> {
        self.tensors.get(name)
    }

    /// Raw little-endian bytes of rows `first .. first + count`.
    pub fn read_rows(
        &self,
        name: &str,
        first: usize,
        count: usize,
    ) -> Result<Vec<u8>, ConvertError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))?;
        let (rows, cols) = t.rows_cols();
        if first + count > rows {
            return Err(ConvertError::MissingTensor(format!(
                "{name} rows {first}..{}",
                first + count
            )));
        }
        let row_bytes = (cols * t.dtype.size()) as u64;
        let path = &self.files[t.file];
        let mut f = File::open(path).map_err(io_err(path))?;
        f.seek(SeekFrom::Start(t.start + first as u64 * row_bytes))
            .map_err(io_err(path))?;
        let mut buf = vec![0u8; (count as u64 * row_bytes) as usize];
        f.read_exact(&mut buf).map_err(io_err(path))?;
        Ok(buf)
    }

    /// Bytes of all tensor data (for progress and size estimates).
    pub fn data_bytes(&self) -> u64 {
        self.tensors
            .values()
            .map(|t| (t.elements() * t.dtype.size()) as u64)
            .sum()
    }
}

fn read_header(path: &Path, file: usize) -> Result<Vec<(String, StTensor)>, ConvertError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad(path, "too short to be a safetensors file"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 * 1024 * 1024 || 8 + header_len > file_len {
        return Err(bad(
            path,
            format!("header length {header_len} is implausible"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(path, format!("header: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad(path, "header is not an object"))?;
    let data_start = 8 + header_len;
    let mut out = Vec::new();
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = match info.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => StDtype::F32,
            Some("F16") => StDtype::F16,
            Some("BF16") => StDtype::BF16,
            Some(other) => {
                return Err(ConvertError::UnsupportedDtype {
                    tensor: name.clone(),
                    dtype: other.to_string(),
                })
            }
            None => return Err(bad(path, format!("`{name}` has no dtype"))),
        };
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(path, format!("`{name}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(path, format!("`{name}` has a bad shape")))?;
        let offs: Vec<u64> = info
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        let [begin, end] = offs[..] else {
            return Err(bad(path, format!("`{name}` has bad data_offsets")));
        };
        let elements: usize = shape.iter().product();
        if end < begin
            || end - begin != (elements * dtype.size()) as u64
            || data_start + end > file_len
        {
            return Err(bad(
                path,
                format!("`{name}`: its data range does not match its shape or the file"),
            ));
        }
        out.push((
            name.clone(),
            StTensor {
                dtype,
                shape,
                file,
                start: data_start + begin,
            },
        ));
    }
    Ok(out)
}

/// Writes a safetensors file from `(name, dtype, shape, bytes)`; used to build test folders and
/// by tools that export models.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, StDtype, Vec<usize>, Vec<u8>)],
) -> Result<(), ConvertError> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let d = match dtype {
            StDtype::F32 => "F32",
            StDtype::F16 => "F16",
            StDtype::BF16 => "BF16",
        };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": d, "shape": shape, "data_offsets": [offset, offset + bytes.len() as u64]}),
        );
        offset += bytes.len() as u64;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| bad(path, e.to_string()))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let f = File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::new(f);
    w.write_all(&(h.len() as u64).to_le_bytes())
        .map_err(io_err(path))?;
    w.write_all(&h).map_err(io_err(path))?;
    for (_, _, _, bytes) in tensors {
        w.write_all(bytes).map_err(io_err(path))?;
    }
    w.flush().map_err(io_err(path))
}
