//! Runs quantized GGUF language models on the CPU.
