//! Reading a Hugging Face `config.json` into the hyper-parameters a GGUF file records, for the
//! architectures the engine runs. Multimodal Gemma 3 configs keep the text model's values under
//! `text_config`; those are used.

use std::path::Path;

use serde_json::Value;

use super::ConvertError;

/// Model families the converter handles, by GGUF architecture name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl Arch {
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

/// Rope scaling recorded in the config.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// Llama 3's frequency-dependent scaling (becomes a `rope_freqs` tensor).
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: u32,
    },
    /// Phi-3's long-context factors (become `rope_factors_long/short` tensors).
    LongRope {
        long: Vec<f32>,
        short: Vec<f32>,
        original_context: u32,
    },
}

#[derive(Clone, Debug)]
pub struct ModelParams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// `head_dim` was given explicitly (it may differ from `n_embd / n_head`).
    pub explicit_head_dim: bool,
    pub n_ff: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    pub rope_dim: usize,
    pub rope_scaling: RopeScaling,
    pub tie_embeddings: bool,
    pub vocab_size: Option<usize>,
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub final_logit_softcapping: Option<f32>,
}

fn get<'a>(cfg: &'a Value, text: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    text.and_then(|t| t.get(key))
        .filter(|v| !v.is_null())
        .or_else(|| cfg.get(key).filter(|v| !v.is_null()))
}

fn as_usize(v: Option<&Value>) -> Option<usize> {
    v.and_then(|v| v.as_u64()).map(|v| v as usize)
}

fn as_f32(v: Option<&Value>) -> Option<f32> {
    v.and_then(|v| v.as_f64()).map(|v| v as f32)
}

fn first_id(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        Value::Array(a) => a.first().and_then(|n| n.as_u64()).map(|n| n as u32),
        _ => None,
    }
}

impl ModelParams {
    pub fn read(path: &Path) -> Result<Self, ConvertError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Value = serde_json::from_str(&text).map_err(|e| ConvertError::InvalidModel {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_json(&cfg).map_err(|message| match message {
            ParamError::Unsupported(a) => ConvertError::UnsupportedArchitecture(a),
            ParamError::Missing(k) => ConvertError::InvalidModel {
                path: path.to_path_buf(),
                message: format!("`{k}` is missing or invalid"),
            },
        })
    }

    pub fn from_json(cfg: &Value) -> Result<Self, ParamError> {
        let archs: Vec<&str> = cfg
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let model_type = cfg.get("model_type").and_then(|m| m.as_str()).unwrap_or("");
        let arch = match (archs.first().copied(), model_type) {
            (Some("LlamaForCausalLM"), _) | (None, "llama") => Arch::Llama,
            (Some("Qwen2ForCausalLM"), _) | (None, "qwen2") => Arch::Qwen2,
            (Some("Qwen3ForCausalLM"), _) | (None, "qwen3") => Arch::Qwen3,
            (Some("Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration"), _)
            | (None, "gemma3" | "gemma3_text") => Arch::Gemma3,
            (Some("Phi3ForCausalLM"), _) | (None, "phi3") => Arch::Phi3,
            (Some(other), _) => return Err(ParamError::Unsupported(other.to_string())),
            (None, other) => return Err(ParamError::Unsupported(other.to_string())),
        };
        let text = cfg.get("text_config").filter(|t| t.is_object());
        let need = |k: &'static str| {
            as_usize(get(cfg, text, k))
                .filter(|v| *v > 0)
                .ok_or(ParamError::Missing(k))
        };
        let n_embd = need("hidden_size")?;
        let n_layer = need("num_hidden_layers")?;
        let n_ff = need("intermediate_size")?;
        let n_head = match as_usize(get(cfg, text, "num_attention_heads")) {
            Some(h) if h > 0 => h,
            _ if arch == Arch::Gemma3 => 8,
            _ => return Err(ParamError::Missing("num_attention_heads")),
        };
        let n_head_kv = as_usize(get(cfg, text, "num_key_value_heads"))
            .filter(|v| *v > 0)
            .unwrap_or(n_head);
        let explicit_head_dim = as_usize(get(cfg, text, "head_dim")).filter(|v| *v > 0);
        let head_dim = match (explicit_head_dim, arch) {
            (Some(h), _) => h,
            (None, Arch::Gemma3) => 256,
            (None, _) if n_embd % n_head == 0 => n_embd / n_head,
            _ => return Err(ParamError::Missing("head_dim")),
        };
        if n_head % n_head_kv != 0 {
            return Err(ParamError::Missing("num_key_value_heads"));
        }
        let rope_params =
            get(cfg, text, "rope_scaling").or_else(|| get(cfg, text, "rope_parameters"));
        let rope_theta = as_f32(get(cfg, text, "rope_theta"))
            .or_else(|| as_f32(rope_params.and_then(|r| r.get("rope_theta"))))
            .unwrap_or(match arch {
                Arch::Gemma3 => 1_000_000.0,
                _ => 10_000.0,
            });
        let partial = as_f32(get(cfg, text, "partial_rotary_factor")).unwrap_or(1.0);
        let rope_dim = match arch {
            Arch::Phi3 => ((partial * n_embd as f32) as usize) / n_head,
            _ => head_dim,
        };
        let context_length =
            as_usize(get(cfg, text, "max_position_embeddings")).unwrap_or(match arch {
                Arch::Gemma3 => 131_072,
                _ => 2048,
            });
        let original_context = as_usize(get(cfg, text, "original_max_position_embeddings"))
            .or_else(|| {
                as_usize(rope_params.and_then(|r| r.get("original_max_position_embeddings")))
            })
            .unwrap_or(context_length) as u32;
        let rope_type = rope_params
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let factor = as_f32(rope_params.and_then(|r| r.get("factor")));
        let floats = |k: &str| -> Vec<f32> {
            rope_params
                .and_then(|r| r.get(k))
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64().map(|x| x as f32))
                        .collect()
                })
                .unwrap_or_default()
        };
        let rope_scaling = match rope_type.as_str() {
            "linear" => RopeScaling::Linear {
                factor: factor.unwrap_or(1.0),
            },
            "llama3" => RopeScaling::Llama3 {
                factor: factor.unwrap_or(8.0),
                low_freq_factor: as_f32(rope_params.and_then(|r| r.get("low_freq_factor")))
                    .unwrap_or(1.0),
                high_freq_factor: as_f32(rope_params.and_then(|r| r.get("high_freq_factor")))
                    .unwrap_or(4.0),
                original_context: as_usize(
                    rope_params.and_then(|r| r.get("original_max_position_embeddings")),
                )
                .unwrap_or(8192) as u32,
            },
            "longrope" | "su" => RopeScaling::LongRope {
                long: floats("long_factor"),
                short: floats("short_factor"),
                original_context,
            },
            _ => RopeScaling::None,
        };
        let tie_embeddings = cfg
            .get("tie_word_embeddings")
            .or_else(|| text.and_then(|t| t.get("tie_word_embeddings")))
            .and_then(|v| v.as_bool())
            .unwrap_or(arch == Arch::Gemma3);
        let sliding_window = as_usize(get(cfg, text, "sliding_window")).filter(|v| *v > 0);
        Ok(Self {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            explicit_head_dim: explicit_head_dim.is_some(),
            n_ff,
            context_length,
            rms_eps: as_f32(get(cfg, text, "rms_norm_eps")).unwrap_or(1e-6),
            rope_theta,
            rope_dim,
            rope_scaling,
            tie_embeddings,
            vocab_size: as_usize(get(cfg, text, "vocab_size")),
            sliding_window,
            bos_token_id: first_id(get(cfg, text, "bos_token_id")),
            eos_token_id: first_id(get(cfg, text, "eos_token_id")),
            final_logit_softcapping: as_f32(get(cfg, text, "final_logit_softcapping")),
        })
    }

    /// Llama 3's per-frequency rope factors (`rope_freqs.weight`), if this model uses them.
    pub fn llama3_rope_factors(&self) -> Option<Vec<f32>> {
        let RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_context,
        } = self.rope_scaling
        else {
            return None;
        };
        let dim = self.head_dim;
        let old = original_context as f32;
        let low_wavelen = old / low_freq_factor;
        let high_wavelen = old / high_freq_factor;
        Some(
            (0..dim / 2)
                .map(|i| {
                    let freq = 1.0 / self.rope_theta.powf((2 * i) as f32 / dim as f32);
                    let wavelen = 2.0 * std::f32::consts::PI / freq;
                    if wavelen < high_wavelen {
                        1.0
                    } else if wavelen > low_wavelen {
                        factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        1.0 / ((1.0 - smooth) / factor + smooth)
                    }
                })
                .collect(),
        )
    }
}

/// Why a config could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    Unsupported(String),
    Missing(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama3_config_gives_rope_factors() {
        let cfg = json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
            "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "tie_word_embeddings": true, "vocab_size": 128256
        });
        let p = ModelParams::from_json(&cfg).unwrap();
        assert_eq!((p.arch, p.head_dim, p.n_head_kv), (Arch::Llama, 64, 8));
        let f = p.llama3_rope_factors().unwrap();
        assert_eq!(f.len(), 32);
        assert_eq!(f[0], 1.0, "high frequencies unscaled");
        assert_eq!(
            *f.last().unwrap(),
            32.0,
            "low frequencies scaled by the factor"
        );
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn gemma3_multimodal_uses_text_config() {
        let cfg = json!({
            "architectures": ["Gemma3ForConditionalGeneration"],
            "text_config": {"hidden_size": 2560, "num_hidden_layers": 34, "intermediate_size": 10240,
                            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                            "sliding_window": 1024, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}},
            "vision_config": {"hidden_size": 1152}
        });
        let p = ModelParams::from_json(&cfg).unwrap();
        assert_eq!(
            (p.arch, p.n_embd, p.n_layer, p.sliding_window),
            (Arch::Gemma3, 2560, 34, Some(1024))
        );
        assert_eq!(p.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert!(p.tie_embeddings);
    }

    #[test]
    fn unknown_architecture_is_named() {
        let cfg = json!({"architectures": ["MambaForCausalLM"], "hidden_size": 8});
        assert_eq!(
            ModelParams::from_json(&cfg).unwrap_err(),
            ParamError::Unsupported("MambaForCausalLM".into())
        );
    }
}
