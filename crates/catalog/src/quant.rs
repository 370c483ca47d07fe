//! The quantization levels Hearth offers for a whole model ("Q4_K_M" and friends), with what a
//! caller needs to plan around them: the GGUF `general.file_type` code, the usual bits per weight
//! (for size and speed estimates) and parsing from user input.
//!
//! A level names a *recipe*, not a single tensor type: a Q4_K_M file keeps some tensors at Q6_K and
//! falls back to 32-wide block types where a row is not a multiple of 256 (see
//! [`crate::convert::recipe`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A whole-model quantization level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Quant {
    #[serde(rename = "F16")]
    F16,
    #[serde(rename = "Q8_0")]
    Q8_0,
    #[serde(rename = "Q6_K")]
    Q6K,
    #[serde(rename = "Q5_K_M")]
    Q5KM,
    #[serde(rename = "Q4_K_M")]
    Q4KM,
}

impl Quant {
    /// Every level, largest first.
    pub const ALL: [Quant; 5] = [
        Quant::F16,
        Quant::Q8_0,
        Quant::Q6K,
        Quant::Q5KM,
        Quant::Q4KM,
    ];

    /// The name as llama.cpp and the Hugging Face GGUF repositories spell it.
    pub fn name(self) -> &'static str {
        match self {
            Quant::F16 => "F16",
            Quant::Q8_0 => "Q8_0",
            Quant::Q6K => "Q6_K",
            Quant::Q5KM => "Q5_K_M",
            Quant::Q4KM => "Q4_K_M",
        }
    }

    /// The value of the GGUF key `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
            Quant::Q4KM => 15,
            Quant::Q5KM => 17,
            Quant::Q6K => 18,
        }
    }

    /// Average bits per weight of a typical file at this level (llama.cpp's published figures for
    /// its recipes). Used to estimate the size of a model that is not on disk yet.
    pub fn bits_per_weight(self) -> f64 {
        match self {
            Quant::F16 => 16.0,
            Quant::Q8_0 => 8.5,
            Quant::Q6K => 6.56,
            Quant::Q5KM => 5.69,
            Quant::Q4KM => 4.89,
        }
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text did not name a level Hearth offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantization `{0}`: use one of F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M")]
pub struct UnknownQuant(pub String);

impl FromStr for Quant {
    type Err = UnknownQuant;

    /// Case-insensitive; `-` may stand for `_` (`q4-k-m`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        Quant::ALL
            .into_iter()
            .find(|q| q.name() == norm)
            .ok_or_else(|| UnknownQuant(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_dashes() {
        assert_eq!("q4_k_m".parse::<Quant>().unwrap(), Quant::Q4KM);
        assert_eq!("Q5-K-M".parse::<Quant>().unwrap(), Quant::Q5KM);
        assert_eq!("f16".parse::<Quant>().unwrap(), Quant::F16);
        assert!("Q3_K_S".parse::<Quant>().is_err());
    }

    #[test]
    fn serde_uses_llama_cpp_names() {
        #[derive(Deserialize, Serialize)]
        struct W {
            q: Quant,
        }
        let w: W = toml::from_str("q = \"Q6_K\"").unwrap();
        assert_eq!(w.q, Quant::Q6K);
        assert_eq!(
            toml::to_string(&W { q: Quant::Q8_0 }).unwrap().trim(),
            "q = \"Q8_0\""
        );
    }
}
