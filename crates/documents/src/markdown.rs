//! Markdown (CommonMark with tables) to sections: ATX and setext headings open sections, the
//! markup itself is dropped, code blocks keep their lines.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::sections::SectionsBuilder;
use crate::Body;

fn level(l: HeadingLevel) -> u32 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

pub(crate) fn extract(text: &str) -> Body {
    let mut b = SectionsBuilder::default();
    let mut heading: Option<(u32, String)> = None;
    let mut para = String::new();
    let mut in_code = false;
    let flush = |b: &mut SectionsBuilder, para: &mut String, code: bool| {
        if code {
            for part in para.split("\n\n") {
                b.paragraph(part);
            }
        } else {
            b.paragraph(para);
        }
        para.clear();
    };
    for event in Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(Tag::Heading { level: l, .. }) => {
                flush(&mut b, &mut para, false);
                heading = Some((level(l), String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((l, h)) = heading.take() {
                    b.heading(&h, l);
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut b, &mut para, false);
                in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                flush(&mut b, &mut para, true);
                in_code = false;
            }
            Event::Start(Tag::Paragraph | Tag::Item | Tag::BlockQuote(_) | Tag::Table(_))
            | Event::End(
                TagEnd::Paragraph | TagEnd::Item | TagEnd::BlockQuote(_) | TagEnd::Table,
            )
            | Event::Rule => flush(&mut b, &mut para, false),
            Event::End(TagEnd::TableRow | TagEnd::TableHead) => para.push('\n'),
            Event::End(TagEnd::TableCell) => para.push(' '),
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                match &mut heading {
                    Some((_, h)) => h.push_str(&t),
                    None if in_code => para.push_str(&t),
                    None => para.push_str(&t.replace('\n', " ")),
                }
            }
            Event::SoftBreak => match &mut heading {
                Some((_, h)) => h.push(' '),
                None => para.push(' '),
            },
            Event::HardBreak => para.push('\n'),
            _ => {}
        }
    }
    flush(&mut b, &mut para, in_code);
    let title = b.first_top_heading.clone();
    Body {
        title,
        sections: b.finish(),
        pages: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lists_code_and_tables() {
        let body = extract(
            "Preface text.\n\n# Title *here*\n\nSome `code` and\nmore.\n\n- one\n- two\n\n\
             Setext\n------\n\n```\nfn x() {}\n\nlet y;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert_eq!(body.title.as_deref(), Some("Title here"));
        let s = &body.sections;
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].text, "Preface text.");
        assert_eq!(s[1].text, "Title here\n\nSome code and more.\n\none\n\ntwo");
        assert_eq!(s[2].heading.as_deref(), Some("Setext"));
        assert_eq!(s[2].text, "Setext\n\nfn x() {}\n\nlet y;\n\na b\n1 2");
    }
}
