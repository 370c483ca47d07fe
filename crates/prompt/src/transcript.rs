//! The plain-completion transcript used for models without a chat template (base models such as
//! Gemma 3 270M).
//!
//! Shape, one line per message, lines joined with `"\n"`:
//!
//! ```text
//! System: You are terse.
//! User: Hi
//! Assistant: Hello!
//! User: What is 2+2?
//! Assistant:
//! ```
//!
//! Each message is written as `"<Role>: <content>"` with the role's capitalised name, in the order
//! given (a system message is a `System:` line wherever it stands). With `add_generation_prompt`
//! a final `"Assistant:"` line (no trailing space) invites the reply. The model's reply ends where
//! it starts the next user turn, so [`PLAIN_STOP_STRINGS`] is `["\nUser:"]`. No BOS text is
//! written: the engine adds BOS as the model's metadata asks.

use crate::conversation::{Message, Role};

/// The stop strings of the plain transcript: the model has finished its turn when it begins the
/// next user line.
pub const PLAIN_STOP_STRINGS: &[&str] = &["\nUser:"];

fn label(role: Role) -> &'static str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
    }
}

/// Writes the transcript described in the module header.
pub(crate) fn render(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for message in messages {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(label(message.role));
        out.push_str(": ");
        out.push_str(&message.content);
    }
    if add_generation_prompt {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("Assistant:");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_message_and_the_generation_prompt() {
        let messages = [
            Message::system("You are terse."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("What is 2+2?"),
        ];
        assert_eq!(
            render(&messages, true),
            "System: You are terse.\nUser: Hi\nAssistant: Hello!\nUser: What is 2+2?\nAssistant:"
        );
        assert_eq!(
            render(&messages[..3], false),
            "System: You are terse.\nUser: Hi\nAssistant: Hello!"
        );
    }

    #[test]
    fn empty_conversation_is_only_the_generation_prompt() {
        assert_eq!(render(&[], true), "Assistant:");
        assert_eq!(render(&[], false), "");
    }
}
