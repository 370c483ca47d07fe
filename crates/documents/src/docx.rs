//! Word documents (Office Open XML, `.docx`): the body's paragraphs in order, headings found
//! through paragraph styles (by name, so translated style ids work) and outline levels.
//!
//! Text in text boxes is kept; deleted revisions, field codes and the fallback copies of
//! drawing content are left out. Word keeps no page numbers in the file, so sections carry
//! headings only.

use std::collections::HashMap;

use crate::budget::Budget;
use crate::sections::SectionsBuilder;
use crate::xml::{attr, first_text, walk, Node};
use crate::zipped::Package;
use crate::{corrupt, Body, DocumentKind, ExtractError};

const KIND: DocumentKind = DocumentKind::Docx;

/// Heading level of a style name such as "heading 2" or "Title".
fn level_from_name(name: &str) -> Option<u32> {
    let name = name.trim().to_ascii_lowercase();
    if name == "title" {
        return Some(1);
    }
    let rest = name.strip_prefix("heading")?.trim();
    let n: u32 = rest.parse().ok()?;
    (1..=9).contains(&n).then_some(n)
}

/// styleId -> heading level, from `word/styles.xml`.
fn heading_styles(styles: &str) -> HashMap<String, u32> {
    let mut map = HashMap::new();
    let mut current: Option<String> = None;
    let _ = walk(styles, KIND, |node| match node {
        Node::Open { name, attrs, .. } => match name {
            "style" => current = attr(attrs, "styleId").map(str::to_string),
            "name" => {
                if let (Some(id), Some(level)) =
                    (&current, attr(attrs, "val").and_then(level_from_name))
                {
                    map.insert(id.clone(), level);
                }
            }
            "outlineLvl" => {
                if let (Some(id), Some(n)) = (
                    &current,
                    attr(attrs, "val").and_then(|v| v.parse::<u32>().ok()),
                ) {
                    if n < 9 {
                        map.entry(id.clone()).or_insert(n + 1);
                    }
                }
            }
            _ => {}
        },
        Node::Close { name: "style" } => current = None,
        _ => {}
    });
    map
}

struct Para {
    text: String,
    level: Option<u32>,
}

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Body, ExtractError> {
    let mut pkg = Package::open(bytes, KIND)?;
    let document = pkg
        .read_text("word/document.xml", budget)?
        .ok_or_else(|| corrupt(KIND, "word/document.xml is missing"))?;
    let styles = match pkg.read_text("word/styles.xml", budget)? {
        Some(s) => heading_styles(&s),
        None => HashMap::new(),
    };
    let title = pkg
        .read_text("docProps/core.xml", budget)?
        .and_then(|core| first_text(&core, KIND, "title"));

    let mut b = SectionsBuilder::default();
    let mut stack: Vec<Para> = Vec::new();
    let mut in_text = false;
    let mut ppr_depth = 0u32;
    // Content left out: names of the elements we are inside of, with their nesting.
    let mut skip_depth = 0u32;
    walk(&document, KIND, |node| match node {
        Node::Open { name, attrs, empty } => {
            if skip_depth > 0 {
                if !empty {
                    skip_depth += 1;
                }
                return;
            }
            match name {
                "Fallback" | "del" | "instrText" | "delText" if !empty => skip_depth = 1,
                "p" if !empty => stack.push(Para {
                    text: String::new(),
                    level: None,
                }),
                "pPr" if !empty => ppr_depth += 1,
                "pStyle" if ppr_depth > 0 => {
                    if let (Some(p), Some(id)) = (stack.last_mut(), attr(attrs, "val")) {
                        p.level = styles.get(id).copied().or_else(|| {
                            // No styles part: Word's built-in ids are "Heading1".."Heading9".
                            level_from_name(&id.replace("Heading", "heading "))
                        });
                    }
                }
                "outlineLvl" if ppr_depth > 0 => {
                    if let (Some(p), Some(n)) = (
                        stack.last_mut(),
                        attr(attrs, "val").and_then(|v| v.parse::<u32>().ok()),
                    ) {
                        if n < 9 {
                            p.level = Some(n + 1);
                        }
                    }
                }
                "t" if !empty => in_text = true,
                "tab" if ppr_depth == 0 => {
                    if let Some(p) = stack.last_mut() {
                        p.text.push('\t');
                    }
                }
                "br" | "cr" => {
                    if let Some(p) = stack.last_mut() {
                        p.text.push('\n');
                    }
                }
                "noBreakHyphen" => {
                    if let Some(p) = stack.last_mut() {
                        p.text.push('-');
                    }
                }
                _ => {}
            }
        }
        Node::Close { name } => {
            if skip_depth > 0 {
                skip_depth -= 1;
                return;
            }
            match name {
                "t" => in_text = false,
                "pPr" => ppr_depth = ppr_depth.saturating_sub(1),
                "tc" => {
                    if let Some(p) = stack.last_mut() {
                        p.text.push(' ');
                    }
                }
                "p" => {
                    if let Some(p) = stack.pop() {
                        match p.level {
                            Some(level) => b.heading(&p.text, level),
                            None => b.paragraph(&p.text),
                        }
                    }
                }
                _ => {}
            }
        }
        Node::Text(t) => {
            if in_text && skip_depth == 0 {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(t);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_names_give_levels() {
        assert_eq!(level_from_name("heading 3"), Some(3));
        assert_eq!(level_from_name("Title"), Some(1));
        assert_eq!(level_from_name("Normal"), None);
        let styles = r#"<w:styles xmlns:w="x"><w:style w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style><w:style w:styleId="Custom"><w:name w:val="Custom"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style></w:styles>"#;
        let map = heading_styles(styles);
        assert_eq!(map.get("berschrift2"), Some(&2));
        assert_eq!(map.get("Custom"), Some(&1));
    }
}
