//! HTML and XHTML to sections: headings `<h1>`–`<h6>` open sections, block elements end
//! paragraphs, `<pre>` keeps its lines, scripts, styles and navigation bars are left out.
//!
//! Works on a token stream (no tree is built), so malformed markup degrades to plain text
//! rather than failing.

use html5gum::{DefaultEmitter, Token, Tokenizer};

use crate::sections::SectionsBuilder;
use crate::Body;

/// Elements whose content is not document text.
const SKIPPED: &[&[u8]] = &[
    b"script",
    b"style",
    b"noscript",
    b"template",
    b"nav",
    b"svg",
    b"math",
    b"object",
    b"iframe",
    b"select",
    b"button",
    b"head",
];

/// Elements that end a paragraph where they start or end.
const BLOCKS: &[&[u8]] = &[
    b"p",
    b"div",
    b"li",
    b"ul",
    b"ol",
    b"dl",
    b"dt",
    b"dd",
    b"pre",
    b"blockquote",
    b"section",
    b"article",
    b"aside",
    b"header",
    b"footer",
    b"main",
    b"figure",
    b"figcaption",
    b"address",
    b"table",
    b"thead",
    b"tbody",
    b"tfoot",
    b"caption",
    b"hr",
    b"form",
    b"fieldset",
    b"details",
    b"summary",
    b"body",
    b"html",
    b"center",
];

fn heading_level(name: &[u8]) -> Option<u32> {
    match name {
        [b'h', d @ b'1'..=b'6'] => Some(u32::from(d - b'0')),
        _ => None,
    }
}

/// Walks one or more HTML documents into one list of sections.
#[derive(Default)]
pub(crate) struct HtmlWalker {
    builder: SectionsBuilder,
    /// Nesting inside skipped elements, by name.
    skip: Vec<Vec<u8>>,
    in_title: bool,
    title: String,
    heading: Option<(u32, String)>,
    para: String,
    pre_depth: u32,
}

impl HtmlWalker {
    pub(crate) fn feed(&mut self, html: &str) {
        let mut emitter = DefaultEmitter::default();
        emitter.naively_switch_states(true);
        for token in Tokenizer::new_with_emitter(html, emitter) {
            let Ok(token) = token;
            match token {
                Token::StartTag(tag) => self.start(&tag.name, tag.self_closing),
                Token::EndTag(tag) => self.end(&tag.name),
                Token::String(s) => self.text(&String::from_utf8_lossy(&s.value)),
                _ => {}
            }
        }
        self.end_paragraph();
        self.skip.clear();
        self.in_title = false;
    }

    fn start(&mut self, name: &[u8], self_closing: bool) {
        if name == b"title" && !self_closing {
            self.in_title = true;
            return;
        }
        if SKIPPED.contains(&name) {
            // `<head>` holds the title, which is read above; its other content is skipped.
            if !self_closing {
                self.skip.push(name.to_vec());
            }
            return;
        }
        if !self.skip.is_empty() {
            return;
        }
        if let Some(level) = heading_level(name) {
            self.end_paragraph();
            self.heading = Some((level, String::new()));
            return;
        }
        match name {
            b"br" => self.push_text("\n"),
            b"td" | b"th" => self.push_text(" "),
            b"img" => {}
            _ if BLOCKS.contains(&name) => {
                self.end_paragraph();
                if name == b"pre" && !self_closing {
                    self.pre_depth += 1;
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &[u8]) {
        if name == b"title" {
            self.in_title = false;
            return;
        }
        if SKIPPED.contains(&name) {
            if let Some(pos) = self.skip.iter().rposition(|n| n.as_slice() == name) {
                self.skip.truncate(pos);
            }
            return;
        }
        if !self.skip.is_empty() {
            return;
        }
        if heading_level(name).is_some() {
            if let Some((level, text)) = self.heading.take() {
                self.builder.heading(&text, level);
            }
            return;
        }
        if name == b"tr" {
            self.push_text("\n");
        } else if BLOCKS.contains(&name) {
            if name == b"pre" {
                self.pre_depth = self.pre_depth.saturating_sub(1);
            }
            self.end_paragraph();
        }
    }

    fn text(&mut self, s: &str) {
        if self.in_title {
            self.title.push_str(s);
            return;
        }
        if !self.skip.is_empty() {
            return;
        }
        if self.pre_depth > 0 {
            self.push_text(s);
        } else {
            let flat: String = s
                .chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .collect();
            self.push_text(&flat);
        }
    }

    fn push_text(&mut self, s: &str) {
        match &mut self.heading {
            Some((_, h)) => h.push_str(s),
            None => self.para.push_str(s),
        }
    }

    fn end_paragraph(&mut self) {
        if let Some((level, text)) = self.heading.take() {
            self.builder.heading(&text, level);
        }
        if self.pre_depth > 0 {
            // Preformatted blocks keep their blank lines as paragraph breaks.
            for part in self.para.split("\n\n") {
                self.builder.paragraph(part);
            }
        } else {
            self.builder.paragraph(&self.para);
        }
        self.para.clear();
    }

    pub(crate) fn title(&self) -> Option<String> {
        let t = crate::sections::squash_spaces(&self.title);
        if t.is_empty() {
            self.builder.first_top_heading.clone()
        } else {
            Some(t)
        }
    }

    pub(crate) fn finish(mut self) -> Body {
        self.end_paragraph();
        let title = self.title();
        Body {
            title,
            sections: self.builder.finish(),
            pages: None,
        }
    }
}

pub(crate) fn extract(html: &str) -> Body {
    let mut walker = HtmlWalker::default();
    walker.feed(html);
    walker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_and_skipped_content() {
        let body = extract(
            "<!doctype html><html><head><title> The  Title </title><style>p{x:1}</style>\
             <script>if (a<b) { document.write('<p>no</p>') }</script></head><body>\
             <nav><a href=x>Home</a></nav><h1>Intro</h1><p>First &amp; one.\n  Still first.</p>\
             <p>Second<br>line</p><h2>Code</h2><pre>a  b\n  c</pre>\
             <table><tr><td>x</td><td>y</td></tr><tr><td>z</td></tr></table></body></html>",
        );
        assert_eq!(body.title.as_deref(), Some("The Title"));
        assert_eq!(body.sections.len(), 2);
        assert_eq!(body.sections[0].heading.as_deref(), Some("Intro"));
        assert_eq!(
            body.sections[0].text,
            "Intro\n\nFirst & one. Still first.\n\nSecond\nline"
        );
        assert_eq!(body.sections[1].heading.as_deref(), Some("Code"));
        assert_eq!(body.sections[1].text, "Code\n\na b\nc\n\nx y\nz");
    }

    #[test]
    fn broken_markup_degrades_to_text() {
        let body = extract("<p>unclosed <b>bold <h3>head</p> tail <div");
        let all: Vec<&str> = body.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(all, vec!["unclosed bold", "head\n\ntail"]);
    }
}
