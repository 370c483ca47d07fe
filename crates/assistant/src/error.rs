//! The one error type that crosses to a user interface: a stable `code` the UI branches on and a
//! `message` written for a person.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: String,
    pub message: String,
}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl From<hearth_store::StoreError> for AppError {
    fn from(e: hearth_store::StoreError) -> Self {
        AppError::new(e.code(), e.to_string())
    }
}

impl From<hearth_engine::EngineError> for AppError {
    fn from(e: hearth_engine::EngineError) -> Self {
        use hearth_engine::EngineError as E;
        let code = match &e {
            E::Io { .. } => "engine.io",
            E::NotGguf { .. } => "engine.not_gguf",
            E::CorruptModel { .. } => "engine.corrupt_model",
            E::UnsupportedArchitecture(_) => "engine.unsupported_architecture",
            E::UnsupportedTensorType { .. } => "engine.unsupported_tensor_type",
            E::Tokenizer(_) => "engine.tokenizer",
            E::Prompt(_) => "engine.prompt",
            E::ContextOverflow { .. } => "engine.context_overflow",
            E::InvalidSetting(_) => "engine.invalid_setting",
            E::Cancelled => "engine.cancelled",
            E::EngineStopped => "engine.stopped",
            _ => "engine.compute",
        };
        AppError::new(code, e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, AppError>;
