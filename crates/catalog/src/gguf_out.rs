//! A streaming GGUF (version 3) writer: the header, metadata and tensor table are written first
//! from a plan of names, shapes and types; tensor data then follows in as many pieces as the
//! caller likes. Memory use does not depend on the model size, unlike candle's `gguf_file::write`
//! which needs every tensor in memory at once.
//!
//! The writer checks that each tensor receives exactly the bytes its type and shape imply and that
//! tensors arrive in plan order; the result reads back with candle's and llama.cpp's readers.

use std::io::{self, Write};

use candle_core::quantized::GgmlDType;

/// Alignment of tensor data (GGUF's default, `general.alignment` is not written).
pub const ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
    F32Array(Vec<f32>),
}

/// One tensor of the plan: dimensions in candle's order (`[rows, cols]`, outermost first).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
}

/// GGML's type id (the `ggml_type` enum).
pub fn ggml_type_id(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

/// llama.cpp's name for a type (`Q4_K`, `F16`, ...).
pub fn ggml_type_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

impl TensorSpec {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes of data; the row length must be a multiple of the type's block size.
    pub fn byte_size(&self) -> u64 {
        let bs = self.dtype.block_size();
        (self.elements() / bs * self.dtype.type_size()) as u64
    }

    /// Whether the innermost dimension fits the type's blocks.
    pub fn fits_blocks(&self) -> bool {
        self.dims
            .last()
            .is_some_and(|c| c % self.dtype.block_size() == 0)
    }
}

fn pad_len(n: u64) -> u64 {
    (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT
}

/// Writes a GGUF file in one pass.
pub struct GgufWriter<W: Write> {
    out: W,
    specs: Vec<TensorSpec>,
    current: usize,
    written_in_current: u64,
    position: u64,
}

struct Counting<'a, W: Write> {
    w: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn put_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn put_value<W: Write>(w: &mut W, v: &MetaValue) -> io::Result<()> {
    match v {
        MetaValue::U32(x) => {
            w.write_all(&4u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::I32(x) => {
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::F32(x) => {
            w.write_all(&6u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        MetaValue::Bool(x) => {
            w.write_all(&7u32.to_le_bytes())?;
            w.write_all(&[*x as u8])
        }
        MetaValue::Str(s) => {
            w.write_all(&8u32.to_le_bytes())?;
            put_str(w, s)
        }
        MetaValue::StrArray(items) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&8u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| put_str(w, s))
        }
        MetaValue::I32Array(items) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
        MetaValue::F32Array(items) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&6u32.to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header, metadata and tensor table, and pads to the first tensor's data.
    pub fn begin(
        mut out: W,
        metadata: &[(String, MetaValue)],
        tensors: Vec<TensorSpec>,
    ) -> io::Result<Self> {
        for t in &tensors {
            if !t.fits_blocks() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: rows of {:?} do not fit {} blocks",
                        t.name,
                        t.dims,
                        ggml_type_name(t.dtype)
                    ),
                ));
            }
        }
        let mut c = Counting { w: &mut out, n: 0 };
        c.write_all(&0x4655_4747u32.to_le_bytes())?; // "GGUF"
        c.write_all(&3u32.to_le_bytes())?;
        c.write_all(&(tensors.len() as u64).to_le_bytes())?;
        c.write_all(&(metadata.len() as u64).to_le_bytes())?;
        for (k, v) in metadata {
            put_str(&mut c, k)?;
            put_value(&mut c, v)?;
        }
        let mut offset = 0u64;
        for t in &tensors {
            put_str(&mut c, &t.name)?;
            c.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in t.dims.iter().rev() {
                c.write_all(&(*d as u64).to_le_bytes())?;
            }
            c.write_all(&ggml_type_id(t.dtype).to_le_bytes())?;
            c.write_all(&offset.to_le_bytes())?;
            offset += t.byte_size() + pad_len(t.byte_size());
        }
        let pad = pad_len(c.n);
        c.write_all(&vec![0u8; pad as usize])?;
        let position = c.n;
        Ok(Self {
            out,
            specs: tensors,
            current: 0,
            written_in_current: 0,
            position,
        })
    }

    /// Total size of the file this writer produces.
    pub fn planned_file_size(&self) -> u64 {
        let data: u64 = self
            .specs
            .iter()
            .map(|t| t.byte_size() + pad_len(t.byte_size()))
            .sum();
        // `position` is where data started only before any data was written.
        self.position - self.data_written() + data
    }

    fn data_written(&self) -> u64 {
        let done: u64 = self.specs[..self.current]
            .iter()
            .map(|t| t.byte_size() + pad_len(t.byte_size()))
            .sum();
        done + self.written_in_current
    }

    /// The tensor that the next bytes belong to.
    pub fn current_tensor(&self) -> Option<&TensorSpec> {
        self.specs.get(self.current)
    }

    /// Appends data of the current tensor; moves to the next one when it is complete.
    pub fn write_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        let spec = self.specs.get(self.current).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "more tensor data than the plan has tensors",
            )
        })?;
        let size = spec.byte_size();
        if self.written_in_current + bytes.len() as u64 > size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: more than its {size} bytes", spec.name),
            ));
        }
        self.out.write_all(bytes)?;
        self.written_in_current += bytes.len() as u64;
        self.position += bytes.len() as u64;
        if self.written_in_current == size {
            let pad = pad_len(size);
            self.out.write_all(&vec![0u8; pad as usize])?;
            self.position += pad;
            self.current += 1;
            self.written_in_current = 0;
        }
        Ok(())
    }

    /// Checks every planned tensor was written and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        if self.current != self.specs.len() {
            let name = self
                .specs
                .get(self.current)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {name} is incomplete"),
            ));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn written_file_reads_back_with_candle() {
        let dev = Device::Cpu;
        let w: Vec<f32> = (0..2 * 256).map(|i| ((i as f32) * 0.37).sin()).collect();
        let t = Tensor::from_vec(w.clone(), (2, 256), &dev).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q4K).unwrap();
        let norm: Vec<f32> = vec![1.0, 2.0, 3.0];
        let specs = vec![
            TensorSpec {
                name: "a.weight".into(),
                dims: vec![2, 256],
                dtype: GgmlDType::Q4K,
            },
            TensorSpec {
                name: "n.weight".into(),
                dims: vec![3],
                dtype: GgmlDType::F32,
            },
        ];
        let meta = vec![
            (
                "general.architecture".to_string(),
                MetaValue::Str("llama".into()),
            ),
            ("llama.block_count".to_string(), MetaValue::U32(1)),
            (
                "tokenizer.ggml.tokens".to_string(),
                MetaValue::StrArray(vec!["a".into(), "b".into()]),
            ),
            (
                "tokenizer.ggml.scores".to_string(),
                MetaValue::F32Array(vec![0.5, -1.0]),
            ),
            (
                "tokenizer.ggml.add_bos_token".to_string(),
                MetaValue::Bool(true),
            ),
        ];
        let mut wr = GgufWriter::begin(Vec::new(), &meta, specs).unwrap();
        let data = q.data().unwrap();
        wr.write_data(&data[..10]).unwrap();
        wr.write_data(&data[10..]).unwrap();
        let bytes: Vec<u8> = norm.iter().flat_map(|x| x.to_le_bytes()).collect();
        wr.write_data(&bytes).unwrap();
        let planned = wr.planned_file_size();
        let out = wr.finish().unwrap();
        assert_eq!(out.len() as u64, planned);

        let mut cur = std::io::Cursor::new(out);
        let content = gguf_file::Content::read(&mut cur).unwrap();
        assert_eq!(content.metadata["llama.block_count"].to_u32().unwrap(), 1);
        assert!(content.metadata["tokenizer.ggml.add_bos_token"]
            .to_bool()
            .unwrap());
        let back = content.tensor(&mut cur, "a.weight", &dev).unwrap();
        assert_eq!(back.dtype(), GgmlDType::Q4K);
        assert_eq!(back.data().unwrap().as_ref(), data.as_ref());
        let n = content
            .tensor(&mut cur, "n.weight", &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap();
        assert_eq!(n.to_vec1::<f32>().unwrap(), norm);
    }

    #[test]
    fn refuses_rows_that_do_not_fit_blocks_and_short_data() {
        let bad = vec![TensorSpec {
            name: "x".into(),
            dims: vec![2, 576],
            dtype: GgmlDType::Q4K,
        }];
        assert!(GgufWriter::begin(Vec::new(), &[], bad).is_err());
        let ok = vec![TensorSpec {
            name: "x".into(),
            dims: vec![1, 32],
            dtype: GgmlDType::Q8_0,
        }];
        let mut w = GgufWriter::begin(Vec::new(), &[], ok).unwrap();
        w.write_data(&[0u8; 10]).unwrap();
        assert!(w.write_data(&[0u8; 30]).is_err(), "34 bytes per Q8_0 block");
        assert!(w.finish().is_err());
    }
}
