//! The errors of the prompt crate; callers branch on the variant.

/// What went wrong while building a prompt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The chat template does not compile; the text says what is wrong and where.
    #[error("the model's chat template is invalid: {0}")]
    Template(String),
    /// The template failed while rendering this conversation. When the template itself gave up
    /// through `raise_exception(...)`, the text is exactly the template's message.
    #[error("the chat template could not render the conversation: {0}")]
    Render(String),
    /// Even with every droppable message removed, the prompt plus the output budget
    /// (`needed` tokens) does not fit in the context window (`available` tokens).
    #[error(
        "the conversation needs {needed} tokens (prompt and reply) but the context window holds {available}"
    )]
    ContextOverflow { needed: usize, available: usize },
    /// The token counter given to [`crate::fit_to_context`] failed.
    #[error("could not count the prompt's tokens: {0}")]
    Tokenize(String),
}
