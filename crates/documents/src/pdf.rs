//! PDF text with page numbers: one section per page (split further where an outline entry
//! starts inside the page), headed by the document outline (bookmarks) when it has one.
//!
//! Order of checks, so that limits hold before work is done:
//! 1. Before parsing: object and cross-reference streams (which the parser inflates while
//!    loading) are measured from the raw bytes against the decompression allowance. In an
//!    encrypted file they cannot be measured, so they are charged at deflate's worst-case ratio.
//! 2. After parsing: a password we do not have is [`ExtractError::EncryptedPdf`]; more pages
//!    than allowed is [`ExtractError::TooManyPages`].
//! 3. Image data is dropped (text extraction does not need it), and every remaining compressed
//!    stream is measured against the allowance before any page is read.
//! 4. Pages are read one by one, each inside `catch_unwind`: one bad page loses that page only.
//!    No text on any page is [`ExtractError::NoTextLayer`].
//!
//! Page numbers are physical (1 = the first page in the file), as a PDF viewer's page box shows.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use flate2::read::{DeflateDecoder, ZlibDecoder};
use lopdf::{Document, Object, ObjectId};
use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use crate::budget::Budget;
use crate::{corrupt, Body, DocumentKind, ExtractError, Limits, Section};

const KIND: DocumentKind = DocumentKind::Pdf;

/// Most output deflate can produce per input byte (258-byte matches coded in about two bits).
const DEFLATE_WORST_RATIO: u64 = 1032;

pub(crate) fn extract(
    bytes: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Body, ExtractError> {
    let encrypted = find(bytes, b"/Encrypt", 0).is_some();
    prescan_load_streams(bytes, encrypted, budget)?;

    let doc = match catch_unwind(AssertUnwindSafe(|| Document::load_mem(bytes))) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => {
            return Err(if encrypted {
                ExtractError::EncryptedPdf
            } else {
                corrupt(KIND, e)
            })
        }
        Err(_) => return Err(corrupt(KIND, "the PDF parser failed")),
    };
    // Loading already tried the empty user password; a document still locked needs a real one.
    if doc.is_encrypted() || (encrypted && doc.objects.is_empty()) {
        return Err(ExtractError::EncryptedPdf);
    }
    let mut doc = doc;

    let pages = doc.get_pages();
    let page_count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    if page_count > limits.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: page_count,
            limit: limits.max_pages,
        });
    }
    if page_count == 0 {
        return Err(corrupt(KIND, "the document has no pages"));
    }

    drop_images(&mut doc);
    let mut measured = BTreeSet::new();
    for (_, &page_id) in pages.iter() {
        for id in doc.get_page_contents(page_id) {
            measure_object(&doc, id, budget, &mut measured)?;
        }
    }
    let ids: Vec<ObjectId> = doc.objects.keys().copied().collect();
    for id in ids {
        measure_object(&doc, id, budget, &mut measured)?;
    }

    let outline = outline(&doc);
    let title = info_title(&doc);

    let mut sections = Vec::new();
    let mut any_text = false;
    let mut failed_pages = 0u32;
    let mut outline_at = 0usize;
    let mut heading: Option<String> = None;
    for (&number, _) in pages.iter() {
        let text = match page_text(&doc, number) {
            Some(t) => t,
            None => {
                failed_pages += 1;
                String::new()
            }
        };
        if !text.trim().is_empty() {
            any_text = true;
        }
        // Outline entries that start on this page, in outline order.
        let mut starts = Vec::new();
        while outline_at < outline.len() && outline[outline_at].0 <= number {
            if outline[outline_at].0 == number {
                starts.push(outline[outline_at].1.clone());
            } else {
                heading = Some(outline[outline_at].1.clone());
            }
            outline_at += 1;
        }
        split_page(&text, number, &starts, &mut heading, &mut sections);
    }
    if !any_text {
        if failed_pages == page_count {
            return Err(corrupt(KIND, "no page could be read"));
        }
        return Err(ExtractError::NoTextLayer { pages: page_count });
    }
    Ok(Body {
        title,
        sections,
        pages: Some(page_count),
    })
}

/// Cuts one page's text where outline entries starting on it are found, so text after a
/// heading is filed under it. `heading` carries the current heading across pages.
fn split_page(
    text: &str,
    page: u32,
    starts: &[String],
    heading: &mut Option<String>,
    out: &mut Vec<Section>,
) {
    let mut rest = text;
    let mut current = heading.clone();
    let mut cut_once = false;
    let mut filed = false;
    for title in starts {
        match find_heading(rest, title) {
            Some(at) => {
                push_section(out, current.clone(), page, &rest[..at]);
                rest = &rest[at..];
                current = Some(title.clone());
                cut_once = true;
            }
            // Not found in the text (spelled differently, or drawn as an image): before any
            // cut the page is filed under it; after one, the text stays where it was cut.
            None if !cut_once && !filed => {
                current = Some(title.clone());
                filed = true;
            }
            None => {}
        }
    }
    push_section(out, current, page, rest);
    if let Some(last) = starts.last() {
        *heading = Some(last.clone());
    }
}

fn push_section(out: &mut Vec<Section>, heading: Option<String>, page: u32, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    out.push(Section {
        heading,
        page: Some(page),
        text: text.to_string(),
    });
}

/// Byte offset of `title` in `text`, compared with whitespace runs collapsed, at a line start.
fn find_heading(text: &str, title: &str) -> Option<usize> {
    let words: Vec<&str> = title.split_whitespace().collect();
    let first = *words.first()?;
    let mut from = 0;
    while let Some(pos) = text[from..].find(first) {
        let at = from + pos;
        let line = &text[text[..at].rfind('\n').map_or(0, |p| p + 1)..at];
        let line_start = is_number_prefix(line);
        if line_start && words_follow(&text[at..], &words) {
            // A section number set on a line of its own just before belongs to the heading.
            let line_begin = at - line.len();
            if line.trim().is_empty() && line_begin > 0 {
                let before = &text[..line_begin - 1];
                let prev_begin = before.rfind('\n').map_or(0, |p| p + 1);
                let prev = &before[prev_begin..];
                if !prev.trim().is_empty()
                    && prev.trim().len() <= 12
                    && is_number_prefix(&format!("{} ", prev.trim()))
                {
                    return Some(prev_begin);
                }
            }
            return Some(line_begin);
        }
        from = at + first.len();
    }
    None
}

/// Whether `prefix` (text between a line start and a heading) is empty or a section number
/// such as "3.2.1 " or "A.1 ", which outlines usually leave out of their titles.
fn is_number_prefix(prefix: &str) -> bool {
    let p = prefix.trim();
    if p.is_empty() {
        return true;
    }
    if !prefix.ends_with([' ', '\t']) || p.len() > 12 {
        return false;
    }
    let mut chars = p.chars();
    let first = chars.next().unwrap_or(' ');
    (first.is_ascii_digit() || first.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_digit() || c == '.')
}

fn words_follow(text: &str, words: &[&str]) -> bool {
    let mut it = text.split_whitespace();
    words.iter().all(|w| it.next() == Some(*w))
}

/// (page, title) of each outline entry, ordered by page and then outline order.
fn outline(doc: &Document) -> Vec<(u32, String)> {
    let toc = match catch_unwind(AssertUnwindSafe(|| doc.get_toc())) {
        Ok(Ok(toc)) => toc,
        _ => return Vec::new(),
    };
    let mut entries: Vec<(u32, String)> = toc
        .toc
        .into_iter()
        .filter_map(|e| {
            let title = crate::sections::squash_spaces(&e.title);
            let page = u32::try_from(e.page).ok()?;
            (!title.is_empty() && page > 0).then_some((page, title))
        })
        .collect();
    entries.sort_by_key(|(page, _)| *page);
    entries
}

fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = info.get(b"Title").ok()?;
    let title = match title {
        Object::Reference(id) => doc.get_object(*id).ok()?,
        t => t,
    };
    let text = lopdf::decode_text_string(title).ok()?;
    let text = crate::sections::squash_spaces(&text);
    (!text.is_empty()).then_some(text)
}

/// Empties image streams: text extraction never needs their pixels, and the extractor would
/// otherwise inflate them (and try to read them as page content).
fn drop_images(doc: &mut Document) {
    for object in doc.objects.values_mut() {
        if let Object::Stream(stream) = object {
            let is_image =
                matches!(stream.dict.get(b"Subtype"), Ok(Object::Name(n)) if n == b"Image");
            if is_image {
                stream.dict.remove(b"Filter");
                stream.dict.remove(b"DecodeParms");
                stream.set_content(Vec::new());
            }
        }
    }
}

/// Charges the decompressed size of stream `id` (once) against the allowance.
fn measure_object(
    doc: &Document,
    id: ObjectId,
    budget: &mut Budget,
    measured: &mut BTreeSet<ObjectId>,
) -> Result<(), ExtractError> {
    if !measured.insert(id) {
        return Ok(());
    }
    let Ok(Object::Stream(stream)) = doc.get_object(id) else {
        return Ok(());
    };
    let Ok(filters) = stream.filters() else {
        return Ok(());
    };
    let mut data: Vec<u8> = stream.content.clone();
    for filter in filters {
        data = match filter {
            b"FlateDecode" | b"Fl" => inflate_bounded(&data, budget)?,
            b"LZWDecode" | b"LZW" => lzw_bounded(&data, budget)?,
            b"ASCII85Decode" | b"A85" => {
                let out = ascii85(&data);
                budget.charge(out.len() as u64)?;
                out
            }
            // Other filters are not decoded by the text extractor (image codecs, crypt).
            _ => return Ok(()),
        };
    }
    Ok(())
}

/// Inflates zlib data (or raw deflate, as the parser falls back to), charging every block.
fn inflate_bounded(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, ExtractError> {
    let out = budget.read_lenient(ZlibDecoder::new(data))?;
    if out.is_empty() && data.len() > 2 {
        return budget.read_lenient(DeflateDecoder::new(&data[2..]));
    }
    Ok(out)
}

fn lzw_bounded(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, ExtractError> {
    use weezl::{decode::Decoder, BitOrder};
    let mut decoder = Decoder::with_tiff_size_switch(BitOrder::Msb, 8);
    let mut out = Vec::new();
    let mut block = vec![0u8; crate::budget::BLOCK];
    let mut input = data;
    loop {
        let result = decoder.decode_bytes(input, &mut block);
        input = &input[result.consumed_in..];
        budget.charge(result.consumed_out as u64)?;
        out.extend_from_slice(&block[..result.consumed_out]);
        match result.status {
            Ok(weezl::LzwStatus::Ok) if result.consumed_in + result.consumed_out > 0 => {}
            _ => return Ok(out),
        }
    }
}

fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut group = [0u8; 5];
    let mut n = 0;
    for &c in data {
        match c {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[n] = c - b'!';
                n += 1;
                if n == 5 {
                    let v = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
                    out.extend_from_slice(&(v as u32).to_be_bytes());
                    n = 0;
                }
            }
            _ => {}
        }
    }
    if n > 1 {
        for slot in group.iter_mut().skip(n) {
            *slot = 84;
        }
        let v = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
        out.extend_from_slice(&(v as u32).to_be_bytes()[..n - 1]);
    }
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Measures, from the raw file, the streams the parser inflates while loading: object streams
/// and cross-reference streams. Other streams are measured after loading.
fn prescan_load_streams(
    bytes: &[u8],
    encrypted: bool,
    budget: &mut Budget,
) -> Result<(), ExtractError> {
    let mut from = 0;
    while let Some(at) = find(bytes, b"stream", from) {
        from = at + 6;
        if at >= 3 && &bytes[at - 3..at] == b"end" {
            continue;
        }
        let mut body = at + 6;
        if bytes.get(body) == Some(&b'\r') {
            body += 1;
        }
        if bytes.get(body) == Some(&b'\n') {
            body += 1;
        }
        // The stream's dictionary: back to the start of its object.
        let window_start = at.saturating_sub(4096);
        let window = &bytes[window_start..at];
        let dict_start = window
            .windows(3)
            .rposition(|w| w == b"obj")
            .map(|p| window_start + p)
            .unwrap_or(window_start);
        let dict = &bytes[dict_start..at];
        let loads_early = find(dict, b"/ObjStm", 0).is_some() || find(dict, b"/XRef", 0).is_some();
        if !loads_early {
            continue;
        }
        let end = find(bytes, b"endstream", body).unwrap_or(bytes.len());
        let data = &bytes[body..end];
        if encrypted && find(dict, b"/ObjStm", 0).is_some() {
            // Encrypted object streams cannot be inflated before decryption: assume the worst.
            budget.charge((data.len() as u64).saturating_mul(DEFLATE_WORST_RATIO))?;
        } else {
            let mut layer = inflate_bounded(data, budget)?;
            // A stream compressed twice is inflated twice by the parser.
            for _ in 0..3 {
                if layer.len() < 2
                    || layer[0] & 0x0F != 8
                    || (u16::from(layer[0]) << 8 | u16::from(layer[1])) % 31 != 0
                {
                    break;
                }
                layer = inflate_bounded(&layer, budget)?;
            }
        }
        from = end.max(from);
    }
    Ok(())
}

/// Text of one page, or `None` when the extractor failed (or panicked) on it.
fn page_text(doc: &Document, page: u32) -> Option<String> {
    let mut sink = PageText::default();
    let ok = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::output_doc_page(doc, &mut sink, page).is_ok()
    }))
    .unwrap_or(false);
    let text = sink.text();
    if !ok && text.trim().is_empty() {
        return None;
    }
    Some(tidy(&text))
}

/// Normalizes extracted page text: ligatures spelled out, words hyphenated across a line end
/// joined, trailing spaces gone, at most one blank line in a row.
fn tidy(s: &str) -> String {
    let s = join_hyphenated(s);
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        for c in line.chars() {
            match c {
                '\u{FB00}' => out.push_str("ff"),
                '\u{FB01}' => out.push_str("fi"),
                '\u{FB02}' => out.push_str("fl"),
                '\u{FB03}' => out.push_str("ffi"),
                '\u{FB04}' => out.push_str("ffl"),
                '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
                '\u{00AD}' => {}
                c if c.is_control() && c != '\t' => {}
                c => out.push(c),
            }
        }
    }
    out
}

/// Joins "exam-\nple" into "example": a letter, a hyphen at the line end, and a lowercase
/// letter starting the next line.
fn join_hyphenated(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut lines = s.split('\n').peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_end();
        let next_lower = lines
            .peek()
            .and_then(|n| n.chars().next())
            .is_some_and(|c| c.is_lowercase());
        let mut tail = trimmed.chars().rev();
        let hyphenated = tail.next() == Some('-') && tail.next().is_some_and(char::is_alphabetic);
        if hyphenated && next_lower {
            out.push_str(&trimmed[..trimmed.len() - 1]);
        } else {
            out.push_str(line);
            if lines.peek().is_some() {
                out.push('\n');
            }
        }
    }
    out
}

/// Lays characters out as lines: a new line when the baseline moves, a space when a gap opens
/// between glyphs on one line. Paragraph breaks are decided per page, from the line gaps.
#[derive(Default)]
struct PageText {
    lines: Vec<Line>,
    current: String,
    started: bool,
    new_word: bool,
    line_y: f64,
    last_x_end: f64,
    last_y: f64,
    last_size: f64,
    chars: usize,
}

struct Line {
    y: f64,
    size: f64,
    text: String,
}

/// Characters kept per page; a page is never legitimately longer.
const MAX_PAGE_CHARS: usize = 2_000_000;

impl PageText {
    fn end_line(&mut self) {
        if !self.current.trim().is_empty() {
            self.lines.push(Line {
                y: self.line_y,
                size: self.last_size,
                text: std::mem::take(&mut self.current),
            });
        }
        self.current.clear();
    }

    /// The page's text: lines joined by newlines, paragraphs (a gap clearly larger than the
    /// page's usual line gap, or a jump upwards) by blank lines.
    fn text(mut self) -> String {
        self.end_line();
        let gaps: Vec<f64> = self
            .lines
            .windows(2)
            .map(|w| w[0].y - w[1].y)
            .filter(|g| *g > 0.0)
            .collect();
        let mut sorted = gaps.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let usual = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                let gap = self.lines[i - 1].y - line.y;
                let size = self.lines[i - 1].size.max(line.size);
                let paragraph = gap < 0.0 || gap > usual * 1.12 + 0.3 || gap > size * 2.2;
                out.push_str(if paragraph { "\n\n" } else { "\n" });
            }
            out.push_str(&line.text);
        }
        out
    }
}

impl OutputDev for PageText {
    fn begin_page(
        &mut self,
        _page_num: u32,
        _media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.started = false;
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        ch: &str,
    ) -> Result<(), OutputError> {
        if self.chars > MAX_PAGE_CHARS {
            return Ok(());
        }
        let scale = (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
        let size = if (font_size * scale).is_finite() && font_size * scale > 0.0 {
            font_size * scale
        } else {
            1.0
        };
        let (x, y) = (trm.m31, trm.m32);
        if !self.started {
            self.line_y = y;
        } else {
            let dy = (y - self.last_y).abs();
            if dy > self.last_size.max(size) * 0.5 {
                self.end_line();
                self.line_y = y;
            } else if x > self.last_x_end + size * 0.15
                || (self.new_word && x > self.last_x_end + size * 0.05)
                || x < self.last_x_end - size * 4.0
            {
                // A gap, or a jump back along the baseline (another column or table cell).
                if !self.current.ends_with(' ') {
                    self.current.push(' ');
                }
            }
        }
        self.new_word = false;
        self.started = true;
        self.current.push_str(ch);
        self.chars += ch.len();
        self.last_y = y;
        self.last_size = size;
        let advance = width * size;
        self.last_x_end = x + if advance.is_finite() { advance } else { 0.0 };
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.new_word = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii85_decodes() {
        assert_eq!(ascii85(b"87cURD]j7BEbo80~>"), b"Hello world!");
        assert_eq!(ascii85(b"z~>"), vec![0; 4]);
    }

    #[test]
    fn hyphens_at_line_ends_join_words() {
        assert_eq!(
            join_hyphenated("an expres-\nsion here\nwell-\nKnown x-\n-y"),
            "an expression here\nwell-\nKnown x-\n-y"
        );
        assert_eq!(tidy("a\u{FB01}b  \n\n\n\nc"), "afib\n\nc");
    }

    #[test]
    fn section_numbers_stay_with_their_heading() {
        assert_eq!(find_heading("end.\n6.7\nArrays\nBash", "Arrays"), Some(5));
        assert_eq!(find_heading("end.\n6.7 Arrays\nBash", "Arrays"), Some(5));
        assert_eq!(find_heading("x Arrays\nArrays of", "Arrays of"), Some(9));
        assert_eq!(find_heading("in 2019\nArrays", "Arrays"), Some(8));
    }

    #[test]
    fn headings_split_pages() {
        let mut out = Vec::new();
        let mut heading = Some("Intro".to_string());
        split_page(
            "end of intro\n2 Next Part\nbody text\nmore",
            3,
            &["2 Next Part".into(), "Missing".into()],
            &mut heading,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].heading.as_deref(), Some("Intro"));
        assert_eq!(out[0].text, "end of intro");
        assert_eq!(out[1].heading.as_deref(), Some("2 Next Part"));
        assert_eq!(out[1].text, "2 Next Part\nbody text\nmore");
        assert_eq!(heading.as_deref(), Some("Missing"));
    }
}
