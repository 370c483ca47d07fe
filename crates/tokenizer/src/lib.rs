//! Builds a `tokenizers::Tokenizer` from the `tokenizer.ggml.*` metadata of a GGUF file.
