//! Turns token ids back into bytes, token by token, with llama.cpp's rules for each kind of
//! vocabulary.
//!
//! Output is bytes, not text: a multi-byte character may be split across tokens, and a caller
//! streaming tokens must be able to hold back an incomplete character instead of printing U+FFFD.

use crate::special_tokens::Attr;

/// How the text of a normal token encodes its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceEncoding {
    /// GPT-2 byte-level BPE: every byte is shown as one printable character.
    ByteLevel,
    /// SentencePiece: raw UTF-8 with U+2581 for a space, bytes as `<0xNN>` tokens.
    Metaspace,
}

/// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the other 68
/// bytes are shifted to U+0100 and up, in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        let code = if printable {
            b as u32
        } else {
            shifted += 1;
            255 + shifted
        };
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// Inverse of [`byte_to_char_table`], indexed by code point (all of them are below U+0144).
#[derive(Clone, Debug)]
pub(crate) struct ByteLevelDecoder {
    bytes: Vec<Option<u8>>,
}

impl ByteLevelDecoder {
    pub fn new() -> Self {
        let table = byte_to_char_table();
        let max = table.iter().map(|&c| c as usize).max().unwrap_or(0);
        let mut bytes = vec![None; max + 1];
        for (b, c) in table.iter().enumerate() {
            bytes[*c as usize] = Some(b as u8);
        }
        Self { bytes }
    }

    /// Appends the bytes a byte-level token stands for. A character outside the table (which a
    /// well-formed vocabulary never has) is copied as its own UTF-8.
    pub fn push(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.bytes.get(c as usize).copied().flatten() {
                Some(b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

/// The byte of a `<0xNN>` token.
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Appends one token's bytes. Control and unknown tokens are left out when `skip_special`;
/// user-defined tokens are always written as their text; unused and undefined tokens produce
/// nothing (as in llama.cpp).
pub(crate) fn push_piece(
    text: &str,
    attr: Attr,
    encoding: PieceEncoding,
    byte_level: &ByteLevelDecoder,
    skip_special: bool,
    out: &mut Vec<u8>,
) {
    if attr.is_control_like() {
        if !skip_special {
            out.extend_from_slice(text.as_bytes());
        }
        return;
    }
    if attr.any(Attr::USER_DEFINED) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    if attr.any(Attr::NORMAL) {
        match encoding {
            PieceEncoding::ByteLevel => byte_level.push(text, out),
            PieceEncoding::Metaspace => {
                for part in text.split('\u{2581}').enumerate() {
                    if part.0 > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(part.1.as_bytes());
                }
            }
        }
        return;
    }
    if attr.any(Attr::BYTE) {
        match parse_byte_token(text) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(text.as_bytes()),
        }
    }
}

/// llama.cpp's "clean up tokenization spaces" passes, used for WordPiece vocabularies (whose
/// pieces put a space before every word, punctuation included): removes the space before
/// `?`, `!`, `.`, `,`, around a lone `'`, and before `'s`, `'m`, `'re`, `'ve`.
pub(crate) fn clean_spaces(text: &mut Vec<u8>) {
    // " ?", " !", " .", " ,"
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // " ' " -> "'"
    let src = std::mem::take(&mut out);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if x == b'\'' && i > 0 && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // " 's", " 'm", " 're", " 've"
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' {
            let next = src.get(i + 1).copied();
            let after = src.get(i + 2).copied();
            let contraction = matches!(next, Some(b's' | b'm'))
                || matches!((next, after), (Some(b'r' | b'v'), Some(b'e')));
            if contraction {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let table = byte_to_char_table();
        assert_eq!(table[b'!' as usize], '!');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[0], 'Ā');
        assert_eq!(table[0xad], 'Ń');
        let decoder = ByteLevelDecoder::new();
        let mut out = Vec::new();
        decoder.push("ĠHelloĊ", &mut out);
        assert_eq!(out, b" Hello\n");
    }

    #[test]
    fn cleans_spaces_like_llama_cpp() {
        let mut text = b"hello , world ! it ' s ok . don 't , we 're here 's".to_vec();
        clean_spaces(&mut text);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "hello, world! it's ok. don 't, we're here's"
        );
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xFF>"), Some(0xff));
        assert_eq!(parse_byte_token("<0x0>"), None);
        assert_eq!(parse_byte_token("hello"), None);
    }

    #[test]
    fn metaspace_pieces() {
        let d = ByteLevelDecoder::new();
        let mut out = Vec::new();
        push_piece(
            "▁Hello▁▁",
            Attr::NORMAL,
            PieceEncoding::Metaspace,
            &d,
            false,
            &mut out,
        );
        push_piece(
            "<s>",
            Attr::CONTROL,
            PieceEncoding::Metaspace,
            &d,
            true,
            &mut out,
        );
        push_piece(
            "<0xE2>",
            Attr::BYTE,
            PieceEncoding::Metaspace,
            &d,
            true,
            &mut out,
        );
        assert_eq!(out, b" Hello  \xe2");
    }
}
