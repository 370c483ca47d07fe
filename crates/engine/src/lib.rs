//! Runs quantized GGUF language models on the CPU.
//!
//! - [`gguf`]: reading and validating model files.
//! - [`kernels`]: Hearth's own quantized matrix products (Q4_0, Q4_1, Q5_0, Q8_0), with the
//!   instruction set chosen at run time; candle's serve the other types.
//! - [`model`]: the transformer (llama, qwen2, qwen3, gemma3, phi3) and its key/value cache.
//! - [`loaded`]: a loaded model that generates text with streaming, stop strings, cancellation
//!   and a prefix cache.
//! - [`engine`]: the thread that owns the model and serves a priority queue of requests.
//! - [`sampling`], [`stream`]: choosing tokens, and turning them into text safely.

pub mod attention;
pub mod engine;
pub mod error;
mod expf;
pub mod gguf;
pub mod kernels;
pub mod loaded;
pub mod model;
pub mod ops;
pub mod pool;
pub mod sampling;
pub mod stream;

pub use engine::{Engine, EngineConfig, EngineEvent, Priority, Request, RequestHandle};
pub use error::{EngineError, Result};
pub use hearth_prompt::{Message, Role};
pub use loaded::{
    compute_threads, default_threads, Event, GenerationParams, LoadedModel, ModelInfo, Outcome,
    Prompt, PromptInfo, Stats, StopReason, Suspended,
};
pub use sampling::SamplingParams;
