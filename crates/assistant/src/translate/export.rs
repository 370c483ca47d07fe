//! Exporting a translation: as Markdown (the translated document as it is) or as plain text
//! (Markdown markup taken out: heading marks, emphasis, code fences and backticks, link targets
//! in parentheses after their text, quote marks; list markers and code kept).

use serde::{Deserialize, Serialize};

use super::segment::{BlockKind, Segmented, TextFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Markdown,
    Text,
}

impl ExportFormat {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Markdown => "md",
            ExportFormat::Text => "txt",
        }
    }
}

/// `text` in the export format; `format` says how `text` is written.
pub fn export(text: &str, format: TextFormat, to: ExportFormat) -> String {
    match (format, to) {
        (_, ExportFormat::Markdown) | (TextFormat::Plain, ExportFormat::Text) => text.to_string(),
        (TextFormat::Markdown, ExportFormat::Text) => markdown_to_text(text),
    }
}

/// Markdown to plain text (see the module header).
pub fn markdown_to_text(md: &str) -> String {
    let doc = Segmented::parse(md, TextFormat::Markdown);
    let mut out = String::new();
    for (i, b) in doc.blocks.iter().enumerate() {
        let piece = match b.kind {
            BlockKind::FrontMatter | BlockKind::Reference => continue,
            BlockKind::Rule => "――――".to_string(),
            BlockKind::Code => fenced_content(doc.block_source(i)),
            BlockKind::Table | BlockKind::Html => doc.block_source(i).to_string(),
            BlockKind::ListItem => {
                let marker = b.prefix.trim_start_matches(['>', ' ']).trim_end();
                let indent = b.prefix.len() - b.prefix.trim_start().len();
                format!(
                    "{}{} {}",
                    " ".repeat(indent),
                    marker,
                    inline_to_text(b.text.as_deref().unwrap_or(""))
                )
            }
            _ => match &b.text {
                Some(t) => inline_to_text(t),
                None => doc.block_source(i).to_string(),
            },
        };
        if !out.is_empty() {
            let tight = b.kind == BlockKind::ListItem
                && i > 0
                && doc.blocks[i - 1].kind == BlockKind::ListItem;
            out.push_str(if tight { "\n" } else { "\n\n" });
        }
        out.push_str(&piece);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn fenced_content(block: &str) -> String {
    let lines: Vec<&str> = block.lines().collect();
    let fenced = lines
        .first()
        .is_some_and(|l| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~"));
    if fenced {
        let end = if lines.len() >= 2 {
            lines.len() - 1
        } else {
            lines.len()
        };
        lines[1.min(lines.len())..end].join("\n")
    } else {
        lines
            .iter()
            .map(|l| {
                l.strip_prefix("    ")
                    .or_else(|| l.strip_prefix('\t'))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Inline Markdown to text: code spans lose their backticks, emphasis marks go, links become
/// `text (url)`, images their alt text.
pub fn inline_to_text(s: &str) -> String {
    let spans = super::segment::code_spans(s);
    let mut out = String::new();
    let mut at = 0;
    for r in spans {
        out.push_str(&plain_run(&s[at..r.start]));
        let code = s[r.clone()].trim_matches('`');
        out.push_str(
            code.strip_prefix(' ')
                .and_then(|c| c.strip_suffix(' '))
                .unwrap_or(code),
        );
        at = r.end;
    }
    out.push_str(&plain_run(&s[at..]));
    out
}

fn plain_run(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // [text](url) and ![alt](url)
        if c == '[' || (c == '!' && chars.get(i + 1) == Some(&'[')) {
            let open = if c == '!' { i + 1 } else { i };
            if let Some(close) = (open + 1..chars.len()).find(|&j| chars[j] == ']') {
                if chars.get(close + 1) == Some(&'(') {
                    if let Some(end) = (close + 2..chars.len()).find(|&j| chars[j] == ')') {
                        let text: String = chars[open + 1..close].iter().collect();
                        let url: String = chars[close + 2..end].iter().collect();
                        out.push_str(&plain_run(&text));
                        if c != '!' && !url.is_empty() && url != text {
                            out.push_str(&format!(" ({url})"));
                        }
                        i = end + 1;
                        continue;
                    }
                }
            }
        }
        if c == '*' || c == '_' {
            // Emphasis: runs of * anywhere, _ only at word edges.
            let run = chars[i..].iter().take_while(|x| **x == c).count();
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + run).copied();
            let inside_word =
                prev.is_some_and(char::is_alphanumeric) && next.is_some_and(char::is_alphanumeric);
            if c == '*' || !inside_word {
                i += run;
                continue;
            }
        }
        if c == '\\' && chars.get(i + 1).is_some_and(|n| n.is_ascii_punctuation()) {
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_text() {
        let md = "# Title\n\nSome **bold** and _em_ text with `code` and a [link](https://x.org).\n\n\
                  - one\n- two\n\n> quoted\n\n```sh\nls -l\n```\n\n![alt text](p.png) snake_case_name\n";
        let t = markdown_to_text(md);
        assert_eq!(
            t,
            "Title\n\nSome bold and em text with code and a link (https://x.org).\n\n- one\n- two\
             \n\nquoted\n\nls -l\n\nalt text snake_case_name\n"
        );
        assert_eq!(export(md, TextFormat::Markdown, ExportFormat::Markdown), md);
        assert_eq!(
            export("a *b*", TextFormat::Plain, ExportFormat::Text),
            "a *b*"
        );
    }
}
