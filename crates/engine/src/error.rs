//! The engine's error type. Callers branch on the variants; the messages are written so that a
//! front end can show them to a person as they are.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("cannot read the model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF model file (it does not start with the GGUF signature)")]
    NotGguf { path: PathBuf },
    #[error("the model file {path} is damaged or incomplete: {reason}")]
    CorruptModel { path: PathBuf, reason: String },
    #[error("this model's architecture `{0}` is not supported (supported: llama, qwen2, qwen3, gemma3, phi3)")]
    UnsupportedArchitecture(String),
    #[error("tensor `{tensor}` uses the type {dtype}, which is not supported")]
    UnsupportedTensorType { tensor: String, dtype: String },
    #[error("the model's tokenizer could not be built: {0}")]
    Tokenizer(#[from] hearth_tokenizer::TokenizerError),
    #[error("the conversation could not be turned into a prompt: {0}")]
    Prompt(hearth_prompt::PromptError),
    #[error("the prompt needs {needed} tokens but the model's context window holds {available}")]
    ContextOverflow { needed: usize, available: usize },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the engine has stopped")]
    EngineStopped,
    #[error("inference failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Compute(e.to_string())
    }
}

impl From<hearth_prompt::PromptError> for EngineError {
    fn from(e: hearth_prompt::PromptError) -> Self {
        match e {
            hearth_prompt::PromptError::ContextOverflow { needed, available } => {
                EngineError::ContextOverflow { needed, available }
            }
            other => EngineError::Prompt(other),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
