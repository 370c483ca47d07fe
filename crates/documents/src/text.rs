//! Character decoding for byte formats without a container (text, Markdown, HTML), and the
//! plain-text extractor.
//!
//! Decoding never fails: a byte-order mark wins, then a declared HTML charset, then UTF-8 when
//! the bytes are valid UTF-8, then Windows-1252 (which maps every byte).

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use crate::{Body, Section};

fn decode_with(bytes: &[u8], declared: Option<&'static Encoding>) -> String {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return clean(&text);
    }
    if let Some(enc) = declared {
        // A page that declares UTF-16 without a BOM is almost always mislabelled UTF-8.
        if enc != UTF_16LE && enc != UTF_16BE {
            let (text, _) = enc.decode_without_bom_handling(bytes);
            return clean(&text);
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => clean(s),
        Err(_) => {
            let looks_utf8 = {
                let (_, had_errors) = UTF_8.decode_without_bom_handling(bytes);
                !had_errors
            };
            let enc = if looks_utf8 { UTF_8 } else { WINDOWS_1252 };
            let (text, _) = enc.decode_without_bom_handling(bytes);
            clean(&text)
        }
    }
}

/// Normalizes line ends to `\n` and drops control characters other than tab and newline.
fn clean(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    s.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// Decodes a text or Markdown file.
pub(crate) fn decode(bytes: &[u8]) -> String {
    decode_with(bytes, None)
}

/// Decodes an HTML file, honouring a `<meta charset>` in its first kilobytes.
pub(crate) fn decode_html(bytes: &[u8]) -> String {
    decode_with(bytes, declared_charset(bytes))
}

fn declared_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = head.find("charset=")?;
    let rest = head[at + "charset=".len()..].trim_start_matches(['"', '\'', ' ']);
    let label: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    Encoding::for_label(label.as_bytes())
}

/// Plain text: one section, paragraphs as the file has them.
pub(crate) fn extract_plain(text: &str) -> Body {
    let mut out = String::with_capacity(text.len());
    for para in split_paragraphs(text) {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&para);
    }
    Body {
        title: None,
        sections: vec![Section {
            heading: None,
            page: None,
            text: out,
        }],
        pages: None,
    }
}

/// Splits on blank lines; trims trailing spaces of each line.
fn split_paragraphs(text: &str) -> Vec<String> {
    let mut paras = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            if !cur.is_empty() {
                paras.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(line);
    }
    if !cur.is_empty() {
        paras.push(cur);
    }
    paras
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_marks_and_fallbacks() {
        assert_eq!(decode(b"\xEF\xBB\xBFhi"), "hi");
        assert_eq!(decode(b"\xFF\xFEh\0i\0"), "hi");
        assert_eq!(decode(b"\xFE\xFF\0h\0i"), "hi");
        assert_eq!(decode("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(decode(b"caf\xE9"), "caf\u{e9}");
        assert_eq!(decode(b"a\r\nb\rc\0"), "a\nb\nc");
    }

    #[test]
    fn html_charset_is_honoured() {
        let page = b"<html><head><meta charset=\"iso-8859-1\"></head><body>caf\xE9</body></html>";
        assert!(decode_html(page).contains("caf\u{e9}"));
        let page =
            b"<meta http-equiv=Content-Type content='text/html; charset=windows-1251'>\xC4\xE0";
        assert!(decode_html(page).ends_with("\u{414}\u{430}"));
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let body = extract_plain("one\ntwo  \n\n\n  \nthree\n");
        assert_eq!(body.sections[0].text, "one\ntwo\n\nthree");
    }
}
