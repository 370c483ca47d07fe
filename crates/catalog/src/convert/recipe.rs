//! Which GGML type each tensor gets at a given [`Quant`] level, following llama.cpp's recipes
//! (`llama_tensor_get_type`) for the levels Hearth offers:
//!
//! - 1-D tensors and norms stay F32; F16 keeps every matrix at F16.
//! - The output projection (or the token embedding when it doubles as the output) gets Q6_K,
//!   or Q8_0 when its rows are not a multiple of 256; Q8_0 models keep Q8_0.
//! - Q4_K_M / Q5_K_M: `attn_v` and `ffn_down` get Q6_K in the first and last eighth of the layers
//!   and every third layer between (`use_more_bits`); a fused `attn_qkv` gets one step more.
//! - A k-quant whose rows are not a multiple of 256 falls back to a 32-wide block type:
//!   Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; and to F16 if even 32 does not divide the rows.

use candle_core::quantized::GgmlDType;

use crate::quant::Quant;

/// What a tensor is, for the recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    TokenEmbd,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnOutput,
    FfnGate,
    FfnUp,
    FfnDown,
    /// Norms, biases, rope factors: never quantized.
    Other,
}

impl Category {
    pub fn of(gguf_name: &str) -> Self {
        let tail = gguf_name
            .rsplit_once("blk.")
            .map(|(_, t)| t.split_once('.').map(|(_, r)| r).unwrap_or(t));
        match (gguf_name, tail) {
            ("token_embd.weight", _) => Category::TokenEmbd,
            ("output.weight", _) => Category::Output,
            (_, Some("attn_q.weight")) => Category::AttnQ,
            (_, Some("attn_k.weight")) => Category::AttnK,
            (_, Some("attn_v.weight")) => Category::AttnV,
            (_, Some("attn_qkv.weight")) => Category::AttnQkv,
            (_, Some("attn_output.weight")) => Category::AttnOutput,
            (_, Some("ffn_gate.weight")) => Category::FfnGate,
            (_, Some("ffn_up.weight")) => Category::FfnUp,
            (_, Some("ffn_down.weight")) => Category::FfnDown,
            _ => Category::Other,
        }
    }
}

/// The layer index in `blk.N.…`.
pub fn layer_of(gguf_name: &str) -> Option<usize> {
    gguf_name
        .strip_prefix("blk.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn use_more_bits(i_layer: usize, n_layer: usize) -> bool {
    let i = i_layer as i64;
    let n = n_layer as i64;
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type chosen for one tensor, and whether a shape fallback was needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub dtype: GgmlDType,
    pub fallback: bool,
}

/// Chooses the type of the tensor `name` with dimensions `dims` (`[rows, cols]`).
/// `tied` says the token embedding is also the output projection.
///
/// `position` is `(i, n)`: the tensor is the i-th of n tensors of its kind (`attn_v`,
/// `ffn_down`, ...) in the order they are written. llama.cpp counts that way rather than by
/// layer number, so a file whose tensors are sorted as text (`blk.10` before `blk.2`) gets its
/// Q6_K layers elsewhere; Hearth writes layers in numeric order, where both agree.
pub fn choose(
    quant: Quant,
    name: &str,
    dims: &[usize],
    position: (usize, usize),
    tied: bool,
) -> Choice {
    let keep = Choice {
        dtype: GgmlDType::F32,
        fallback: false,
    };
    let cat = Category::of(name);
    if dims.len() < 2
        || !name.ends_with("weight")
        || name.contains("_norm.weight")
        || cat == Category::Other
    {
        return keep;
    }
    let ncols = dims[dims.len() - 1];
    let base = match quant {
        Quant::F16 => {
            return Choice {
                dtype: GgmlDType::F16,
                fallback: false,
            }
        }
        Quant::Q8_0 => GgmlDType::Q8_0,
        Quant::Q6K => GgmlDType::Q6K,
        Quant::Q5KM => GgmlDType::Q5K,
        Quant::Q4KM => GgmlDType::Q4K,
    };
    let mut t = base;
    let (i_layer, n_layer) = position;
    let medium = matches!(quant, Quant::Q4KM | Quant::Q5KM);
    match cat {
        Category::Output => t = output_type(base, ncols),
        Category::TokenEmbd if tied => t = output_type(base, ncols),
        Category::AttnV | Category::FfnDown if medium && use_more_bits(i_layer, n_layer) => {
            t = GgmlDType::Q6K
        }
        Category::AttnQkv if quant == Quant::Q4KM => t = GgmlDType::Q5K,
        Category::AttnQkv if quant == Quant::Q5KM => t = GgmlDType::Q6K,
        _ => {}
    }
    fallback(t, ncols)
}

fn output_type(base: GgmlDType, ncols: usize) -> GgmlDType {
    if ncols % base.block_size() != 0 {
        GgmlDType::Q8_0
    } else if base != GgmlDType::Q8_0 {
        GgmlDType::Q6K
    } else {
        base
    }
}

fn fallback(t: GgmlDType, ncols: usize) -> Choice {
    if ncols % t.block_size() == 0 {
        return Choice {
            dtype: t,
            fallback: false,
        };
    }
    let f = match t {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        other => other,
    };
    let f = if ncols % f.block_size() == 0 {
        f
    } else {
        GgmlDType::F16
    };
    Choice {
        dtype: f,
        fallback: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(q: Quant, name: &str, dims: &[usize], n: usize, tied: bool) -> Choice {
        super::choose(q, name, dims, (layer_of(name).unwrap_or(0), n), tied)
    }

    #[test]
    fn q4_k_m_mix_matches_llama_cpp() {
        let n = 32;
        // Rows of 4096: no fallbacks.
        let d = [4096, 4096];
        assert_eq!(
            choose(Quant::Q4KM, "blk.0.attn_q.weight", &d, n, false).dtype,
            GgmlDType::Q4K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.0.attn_v.weight", &d, n, false).dtype,
            GgmlDType::Q6K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.5.attn_v.weight", &d, n, false).dtype,
            GgmlDType::Q4K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.6.ffn_down.weight", &d, n, false).dtype,
            GgmlDType::Q6K
        ); // (6-4)%3==2
        assert_eq!(
            choose(Quant::Q4KM, "blk.31.ffn_down.weight", &d, n, false).dtype,
            GgmlDType::Q6K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.7.ffn_up.weight", &d, n, false).dtype,
            GgmlDType::Q4K
        );
        assert_eq!(
            choose(Quant::Q4KM, "output.weight", &d, n, false).dtype,
            GgmlDType::Q6K
        );
        assert_eq!(
            choose(Quant::Q4KM, "token_embd.weight", &d, n, false).dtype,
            GgmlDType::Q4K
        );
        assert_eq!(
            choose(Quant::Q4KM, "token_embd.weight", &d, n, true).dtype,
            GgmlDType::Q6K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.3.attn_qkv.weight", &d, n, false).dtype,
            GgmlDType::Q5K
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.0.attn_norm.weight", &[4096], n, false).dtype,
            GgmlDType::F32
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.0.attn_q.bias", &[4096], n, false).dtype,
            GgmlDType::F32
        );
        assert_eq!(
            choose(Quant::Q4KM, "rope_freqs.weight", &[64], n, false).dtype,
            GgmlDType::F32
        );
    }

    #[test]
    fn rows_not_multiple_of_256_fall_back() {
        // SmolLM2-135M: hidden 576 = 2.25 * 256.
        let c = choose(Quant::Q4KM, "blk.0.attn_q.weight", &[576, 576], 30, true);
        assert_eq!(
            c,
            Choice {
                dtype: GgmlDType::Q5_0,
                fallback: true
            }
        );
        assert_eq!(
            choose(Quant::Q4KM, "blk.0.attn_v.weight", &[192, 576], 30, true).dtype,
            GgmlDType::Q8_0
        );
        assert_eq!(
            choose(Quant::Q5KM, "blk.10.ffn_up.weight", &[1536, 576], 30, true).dtype,
            GgmlDType::Q5_1
        );
        // ffn_down's rows are 1536 = 6 * 256 long: a real k-quant.
        assert_eq!(
            choose(
                Quant::Q4KM,
                "blk.10.ffn_down.weight",
                &[576, 1536],
                30,
                true
            )
            .dtype,
            GgmlDType::Q4K
        );
        assert_eq!(
            choose(Quant::Q4KM, "token_embd.weight", &[49152, 576], 30, true).dtype,
            GgmlDType::Q8_0
        );
        assert_eq!(
            choose(Quant::Q6K, "blk.0.attn_q.weight", &[576, 576], 30, true).dtype,
            GgmlDType::Q8_0
        );
        assert_eq!(
            choose(Quant::Q8_0, "blk.0.attn_q.weight", &[576, 576], 30, true).dtype,
            GgmlDType::Q8_0
        );
        assert_eq!(
            choose(Quant::Q8_0, "blk.0.attn_q.weight", &[8, 48], 30, true).dtype,
            GgmlDType::F16
        );
        assert_eq!(
            choose(Quant::F16, "blk.0.attn_q.weight", &[576, 576], 30, true).dtype,
            GgmlDType::F16
        );
    }
}
