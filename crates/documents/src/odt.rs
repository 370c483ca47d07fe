//! OpenDocument text (`.odt`): headings (`text:h` with their outline level) and paragraphs in
//! body order, spaces and tabs expanded, tables and lists flattened to paragraphs.
//!
//! Comments, tracked deletions and generated indexes (a table of contents repeats the
//! headings) are left out. The file keeps no reliable page numbers, so sections carry headings.

use crate::budget::Budget;
use crate::sections::SectionsBuilder;
use crate::xml::{attr, first_text, walk, Node};
use crate::zipped::Package;
use crate::{corrupt, Body, DocumentKind, ExtractError};

const KIND: DocumentKind = DocumentKind::Odt;

const SKIPPED: &[&str] = &[
    "annotation",
    "tracked-changes",
    "note-citation",
    "table-of-content",
    "alphabetical-index",
    "illustration-index",
    "table-index",
    "object-index",
    "user-index",
    "bibliography",
];

struct Para {
    text: String,
    level: Option<u32>,
}

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Body, ExtractError> {
    let mut pkg = Package::open(bytes, KIND)?;
    let content = pkg
        .read_text("content.xml", budget)?
        .ok_or_else(|| corrupt(KIND, "content.xml is missing"))?;
    let title = pkg
        .read_text("meta.xml", budget)?
        .and_then(|meta| first_text(&meta, KIND, "title"));

    let mut b = SectionsBuilder::default();
    let mut stack: Vec<Para> = Vec::new();
    let mut skip_depth = 0u32;
    walk(&content, KIND, |node| match node {
        Node::Open { name, attrs, empty } => {
            if skip_depth > 0 {
                if !empty {
                    skip_depth += 1;
                }
                return;
            }
            if SKIPPED.contains(&name) {
                if !empty {
                    skip_depth = 1;
                }
                return;
            }
            let push = |stack: &mut Vec<Para>, s: &str| {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(s);
                }
            };
            match name {
                "p" | "h" if !empty => {
                    let level = (name == "h").then(|| {
                        attr(attrs, "outline-level")
                            .and_then(|v| v.parse::<u32>().ok())
                            .unwrap_or(1)
                            .clamp(1, 10)
                    });
                    stack.push(Para {
                        text: String::new(),
                        level,
                    });
                }
                "s" => {
                    let n = attr(attrs, "c")
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(1)
                        .min(64);
                    push(&mut stack, &" ".repeat(n));
                }
                "tab" => push(&mut stack, "\t"),
                "line-break" => push(&mut stack, "\n"),
                "table-cell" => push(&mut stack, " "),
                _ => {}
            }
        }
        Node::Close { name } => {
            if skip_depth > 0 {
                skip_depth -= 1;
                return;
            }
            if name == "p" || name == "h" {
                if let Some(p) = stack.pop() {
                    match p.level {
                        Some(level) => b.heading(&p.text, level),
                        None => b.paragraph(&p.text),
                    }
                }
            }
        }
        Node::Text(t) => {
            if skip_depth == 0 {
                if let Some(p) = stack.last_mut() {
                    // Inside ODF paragraphs, newlines in the XML are just spaces.
                    p.text.push_str(&t.replace(['\n', '\r'], " "));
                }
            }
        }
    })?;
    let title = title.or_else(|| b.first_top_heading.clone());
    Ok(Body {
        title,
        sections: b.finish(),
        pages: None,
    })
}
