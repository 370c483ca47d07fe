//! Builds [`Section`]s from a stream of headings and paragraphs, as the structured formats
//! (DOCX, ODT, EPUB, HTML, Markdown) produce them.

use crate::Section;

/// Collapses every run of whitespace into one space and trims the ends.
pub(crate) fn squash_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Collapses runs of spaces and tabs inside each line, drops blank lines, trims.
pub(crate) fn tidy_paragraph(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let line = squash_spaces(line);
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

#[derive(Default)]
pub(crate) struct SectionsBuilder {
    sections: Vec<Section>,
    heading: Option<String>,
    text: String,
    /// The first heading of the top level seen, a fallback title.
    pub(crate) first_top_heading: Option<String>,
}

impl SectionsBuilder {
    /// Starts a new section under `heading` (level 1 is the top).
    pub(crate) fn heading(&mut self, heading: &str, level: u32) {
        let heading = squash_spaces(heading);
        if heading.is_empty() {
            return;
        }
        if level <= 1 && self.first_top_heading.is_none() {
            self.first_top_heading = Some(heading.clone());
        }
        self.flush();
        // The heading's own words are text too: a summary must be able to quote them.
        self.text.push_str(&heading);
        self.heading = Some(heading);
    }

    /// Adds one paragraph to the current section.
    pub(crate) fn paragraph(&mut self, text: &str) {
        let text = tidy_paragraph(text);
        if text.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(&text);
    }

    fn flush(&mut self) {
        if !self.text.trim().is_empty() {
            self.sections.push(Section {
                heading: self.heading.clone(),
                page: None,
                text: std::mem::take(&mut self.text),
            });
        }
        self.text.clear();
    }

    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.flush();
        self.sections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_open_sections_and_keep_their_words() {
        let mut b = SectionsBuilder::default();
        b.paragraph("Before any heading.");
        b.heading(" Intro  ", 1);
        b.paragraph("One  two\n\n three");
        b.heading("Empty", 2);
        b.heading("Next", 2);
        b.paragraph("x");
        let s = b.finish();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].heading, None);
        assert_eq!(s[1].heading.as_deref(), Some("Intro"));
        assert_eq!(s[1].text, "Intro\n\nOne two\nthree");
        assert_eq!(s[2].text, "Empty");
        assert_eq!(s[3].text, "Next\n\nx");
    }
}
