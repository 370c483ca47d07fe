//! Reads gettext message catalogs (`.mo` files): the compiled translations that Linux programs
//! ship under `/usr/share/locale/LANG/LC_MESSAGES/`. Hearth uses them as a source of real human
//! translations (the quality tests) and to import glossaries.
//!
//! Contract: [`MoCatalog::parse`] never panics on any input; every offset is checked against the
//! file. Both byte orders and format revisions 0 and 1 are read. Catalogs must be UTF-8 (or
//! ASCII), as the header's `Content-Type` says; others are refused with
//! [`MoError::UnsupportedCharset`]. Message contexts (`msgctxt`) and plural forms are kept.

use std::path::Path;

const MAGIC: u32 = 0x9504_12de;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a gettext catalog (no .mo magic number)")]
    NotMo,
    #[error("gettext catalog format revision {0} is not supported")]
    UnsupportedRevision(u32),
    #[error("damaged gettext catalog: {0}")]
    Damaged(String),
    #[error("gettext catalog in charset {0}; only UTF-8 is read")]
    UnsupportedCharset(String),
}

/// One message of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoMessage {
    pub context: Option<String>,
    pub id: String,
    pub plural_id: Option<String>,
    /// One string, or one per plural form.
    pub translations: Vec<String>,
}

/// A parsed catalog: the header entry and the messages, in the file's (sorted) order.
#[derive(Debug, Clone, Default)]
pub struct MoCatalog {
    header: String,
    messages: Vec<MoMessage>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32_at(&self, offset: usize) -> Result<u32, MoError> {
        let b = offset
            .checked_add(4)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or_else(|| MoError::Damaged(format!("offset {offset} is past the end")))?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// The `index`-th string of the table at `table` (length, offset pairs).
    fn string(&self, table: usize, index: usize) -> Result<&[u8], MoError> {
        let entry = index
            .checked_mul(8)
            .and_then(|o| o.checked_add(table))
            .ok_or_else(|| MoError::Damaged("string table offset overflows".into()))?;
        let len = self.u32_at(entry)? as usize;
        let off = self.u32_at(entry + 4)? as usize;
        off.checked_add(len)
            .and_then(|end| self.bytes.get(off..end))
            .ok_or_else(|| MoError::Damaged(format!("string {index} lies outside the file")))
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, MoError> {
    String::from_utf8(b.to_vec()).map_err(|_| MoError::Damaged(format!("{what} is not UTF-8")))
}

impl MoCatalog {
    pub fn open(path: &Path) -> Result<Self, MoError> {
        let bytes = std::fs::read(path).map_err(|source| MoError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, MoError> {
        let head = bytes.get(0..4).ok_or(MoError::NotMo)?;
        let le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let big_endian = if le == MAGIC {
            false
        } else if u32::from_be_bytes([head[0], head[1], head[2], head[3]]) == MAGIC {
            true
        } else {
            return Err(MoError::NotMo);
        };
        let r = Reader { bytes, big_endian };
        let revision = r.u32_at(4)?;
        if revision >> 16 > 1 {
            return Err(MoError::UnsupportedRevision(revision));
        }
        let count = r.u32_at(8)? as usize;
        let originals = r.u32_at(12)? as usize;
        let translations = r.u32_at(16)? as usize;
        // Each message needs 16 bytes of tables: a count larger than the file is a lie.
        if count > bytes.len() / 16 {
            return Err(MoError::Damaged(format!(
                "{count} messages in {} bytes",
                bytes.len()
            )));
        }
        let mut header = String::new();
        let mut messages = Vec::with_capacity(count);
        for i in 0..count {
            let key = r.string(originals, i)?;
            let value = r.string(translations, i)?;
            if key.is_empty() {
                header = utf8(value, "the header")?;
                check_charset(&header)?;
                continue;
            }
            let (context, key) = match key.iter().position(|&b| b == 4) {
                Some(p) => (Some(utf8(&key[..p], "a context")?), &key[p + 1..]),
                None => (None, key),
            };
            let mut ids = key.split(|&b| b == 0);
            let id = utf8(ids.next().unwrap_or_default(), "a message id")?;
            let plural_id = ids.next().map(|p| utf8(p, "a plural id")).transpose()?;
            let translations = value
                .split(|&b| b == 0)
                .map(|t| utf8(t, "a translation"))
                .collect::<Result<Vec<_>, _>>()?;
            messages.push(MoMessage {
                context,
                id,
                plural_id,
                translations,
            });
        }
        Ok(Self { header, messages })
    }

    pub fn messages(&self) -> &[MoMessage] {
        &self.messages
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The translation of a message without context (its first form); None when the catalog
    /// lacks it or leaves it untranslated.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.messages
            .iter()
            .find(|m| m.context.is_none() && m.id == id)
            .and_then(|m| m.translations.first())
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// A header field (`Language`, `Content-Type`, `Plural-Forms`, ...).
    pub fn header(&self, field: &str) -> Option<&str> {
        self.header.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(field).then(|| v.trim())
        })
    }
}

fn check_charset(header: &str) -> Result<(), MoError> {
    let Some(ct) = header.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-type").then_some(v)
    }) else {
        return Ok(());
    };
    let Some(cs) = ct.split("charset=").nth(1) else {
        return Ok(());
    };
    let cs = cs.trim().trim_end_matches(';').trim();
    match cs.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" | "ascii" | "us-ascii" | "charset" | "" => Ok(()),
        _ => Err(MoError::UnsupportedCharset(cs.to_string())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a little-endian (or big-endian) catalog from (key, value) byte strings.
    pub(crate) fn build(entries: &[(&[u8], &[u8])], big_endian: bool) -> Vec<u8> {
        let put = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        let n = entries.len() as u32;
        let mut out = Vec::new();
        let originals = 28u32;
        let translations = originals + 8 * n;
        let mut data_at = translations + 8 * n;
        put(&mut out, MAGIC);
        put(&mut out, 0);
        put(&mut out, n);
        put(&mut out, originals);
        put(&mut out, translations);
        put(&mut out, 0);
        put(&mut out, 0);
        let mut data = Vec::new();
        let mut tables = [Vec::new(), Vec::new()];
        for (k, v) in entries {
            for (t, s) in [(0, *k), (1, *v)] {
                put(&mut tables[t], s.len() as u32);
                put(&mut tables[t], data_at);
                data.extend_from_slice(s);
                data.push(0);
                data_at += s.len() as u32 + 1;
            }
        }
        out.extend_from_slice(&tables[0]);
        out.extend_from_slice(&tables[1]);
        out.extend_from_slice(&data);
        out
    }

    const HEADER: &[u8] = b"Language: fr\nContent-Type: text/plain; charset=UTF-8\n";

    #[test]
    fn reads_messages_contexts_and_plurals_in_both_byte_orders() {
        for be in [false, true] {
            let bytes = build(
                &[
                    (b"", HEADER),
                    (b"Open the file.", "Ouvrir le fichier.".as_bytes()),
                    (b"menu\x04Open", b"Ouvrir"),
                    (b"%d file\0%d files", b"%d fichier\0%d fichiers"),
                ],
                be,
            );
            let c = MoCatalog::parse(&bytes).unwrap();
            assert_eq!(c.len(), 3);
            assert_eq!(c.get("Open the file."), Some("Ouvrir le fichier."));
            assert_eq!(c.get("Open"), None, "a context message needs its context");
            assert_eq!(c.messages()[1].context.as_deref(), Some("menu"));
            assert_eq!(c.messages()[2].plural_id.as_deref(), Some("%d files"));
            assert_eq!(
                c.messages()[2].translations,
                vec!["%d fichier", "%d fichiers"]
            );
            assert_eq!(c.header("language"), Some("fr"));
        }
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let good = build(&[(b"", HEADER), (b"a", b"b"), (b"c", b"d")], false);
        assert!(matches!(MoCatalog::parse(b"xx"), Err(MoError::NotMo)));
        assert!(matches!(MoCatalog::parse(&[0u8; 40]), Err(MoError::NotMo)));
        for cut in 0..good.len() {
            let _ = MoCatalog::parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[8] = 0xff; // message count
        assert!(MoCatalog::parse(&bad).is_err());
        let mut bad = good.clone();
        bad[32] = 0xff; // an offset
        assert!(MoCatalog::parse(&bad).is_err());
        let mut bad = good;
        bad[4..8].copy_from_slice(&0x0005_0000u32.to_le_bytes());
        assert!(matches!(
            MoCatalog::parse(&bad),
            Err(MoError::UnsupportedRevision(_))
        ));
    }

    #[test]
    fn other_charsets_are_refused() {
        let bytes = build(
            &[
                (b"", b"Content-Type: text/plain; charset=ISO-8859-1\n"),
                (b"a", b"\xe9"),
            ],
            false,
        );
        assert!(matches!(
            MoCatalog::parse(&bytes),
            Err(MoError::UnsupportedCharset(c)) if c == "ISO-8859-1"
        ));
    }
}
