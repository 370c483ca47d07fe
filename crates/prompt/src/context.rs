//! The context policy: fitting a conversation into the model's context window.
//!
//! Policy, as [`fit_to_context`] applies it:
//! - every system message is kept, and so is the last user message together with any assistant
//!   messages after it;
//! - the other messages are grouped into turns: a user message and the assistant replies that
//!   follow it form one turn (assistant messages before any user message form a turn of their
//!   own); system messages do not break a turn;
//! - whole turns are dropped, oldest first, until the rendered prompt (with the generation prompt)
//!   plus `reserve_output` tokens fits in `context_len`, so the conversation that remains still
//!   alternates user/assistant;
//! - the result says how many messages were dropped; when nothing droppable is left and the
//!   prompt still does not fit, the answer is [`PromptError::ContextOverflow`].
//!
//! Tokens are counted by the caller's `count_tokens` on the rendered text, so they should count
//! exactly what the engine will feed the model (including a BOS it adds itself). The prompt is
//! rendered and counted about log2(number of turns) + 2 times.

use crate::conversation::{Message, Role};
use crate::error::PromptError;
use crate::format::ChatFormat;

/// A conversation rendered to fit the context window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The prompt text, ending with the generation prompt.
    pub text: String,
    /// `count_tokens(&text)`.
    pub prompt_tokens: usize,
    /// How many of the given messages were left out (0 when everything fitted).
    pub dropped_messages: usize,
}

/// Context policy: keep every system message and the last user message; drop the oldest other
/// messages (a user message and the assistant reply after it go together) until
/// `prompt_tokens + reserve_output <= context_len`. Says how many were dropped.
///
/// The prompt is rendered with the generation prompt. Fails with
/// [`PromptError::ContextOverflow`] (`needed` = prompt tokens + `reserve_output`,
/// `available` = `context_len`) when even the kept messages alone do not fit.
pub fn fit_to_context(
    format: &ChatFormat,
    messages: &[Message],
    count_tokens: &dyn Fn(&str) -> Result<usize, PromptError>,
    context_len: usize,
    reserve_output: usize,
) -> Result<Fitted, PromptError> {
    let turns = droppable_turns(messages);
    let attempt = |drop_turns: usize| -> Result<(Fitted, bool), PromptError> {
        let dropped: Vec<usize> = turns[..drop_turns].iter().flatten().copied().collect();
        let kept: Vec<Message> = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        let text = format.render(&kept, true)?;
        let prompt_tokens = count_tokens(&text)?;
        let fits = prompt_tokens.saturating_add(reserve_output) <= context_len;
        Ok((
            Fitted {
                text,
                prompt_tokens,
                dropped_messages: dropped.len(),
            },
            fits,
        ))
    };

    let (whole, fits) = attempt(0)?;
    if fits {
        return Ok(whole);
    }
    let (least, fits) = if turns.is_empty() {
        (whole, false)
    } else {
        attempt(turns.len())?
    };
    if !fits {
        return Err(PromptError::ContextOverflow {
            needed: least.prompt_tokens.saturating_add(reserve_output),
            available: context_len,
        });
    }
    // Dropping more turns never makes the prompt longer: find the fewest that fit.
    let (mut too_few, mut enough, mut best) = (0, turns.len(), least);
    while enough - too_few > 1 {
        let mid = too_few + (enough - too_few) / 2;
        let (fitted, fits) = attempt(mid)?;
        if fits {
            enough = mid;
            best = fitted;
        } else {
            too_few = mid;
        }
    }
    Ok(best)
}

/// The indices of the droppable messages, grouped into turns, oldest first (see the module
/// header). The turn that starts with the last user message is kept and not listed.
fn droppable_turns(messages: &[Message]) -> Vec<Vec<usize>> {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let mut turns: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if Some(i) == last_user {
            break;
        }
        match message.role {
            Role::System => {}
            Role::User => {
                if !current.is_empty() {
                    turns.push(std::mem::take(&mut current));
                }
                current.push(i);
            }
            Role::Assistant => current.push(i),
        }
    }
    if !current.is_empty() {
        turns.push(current);
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_user_message_that_does_not_fit_overflows() {
        let format = ChatFormat::plain();
        let count = |text: &str| -> Result<usize, PromptError> { Ok(text.len()) };
        let messages = [Message::user("Hello")];
        // "User: Hello\nAssistant:" is 22 bytes.
        let fitted = fit_to_context(&format, &messages, &count, 30, 8).unwrap();
        assert_eq!((fitted.prompt_tokens, fitted.dropped_messages), (22, 0));
        assert_eq!(
            fit_to_context(&format, &messages, &count, 29, 8).unwrap_err(),
            PromptError::ContextOverflow {
                needed: 30,
                available: 29
            }
        );
    }

    #[test]
    fn turns_pair_each_user_message_with_the_replies_after_it() {
        let messages = [
            Message::system("s"),     // 0
            Message::assistant("hi"), // 1
            Message::user("u1"),      // 2
            Message::assistant("a1"), // 3
            Message::system("s2"),    // 4
            Message::user("u2"),      // 5
            Message::assistant("a2"), // 6
            Message::assistant("a2b"),
            Message::user("u3"), // 8
            Message::assistant("a3"),
        ];
        assert_eq!(
            droppable_turns(&messages),
            vec![vec![1], vec![2, 3], vec![5, 6, 7]]
        );
    }
}
