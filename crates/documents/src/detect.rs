//! Decides a file's kind from its content; the extension only breaks ties that content cannot
//! (Markdown and plain text look alike) or names the kind a damaged file was meant to be.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use crate::{corrupt, DocumentKind, ExtractError};

/// The kind an extension names, if it is one this crate reads.
pub(crate) fn kind_from_extension(ext: &str) -> Option<DocumentKind> {
    Some(
        match ext.trim_start_matches('.').to_ascii_lowercase().as_str() {
            "pdf" => DocumentKind::Pdf,
            "docx" | "docm" => DocumentKind::Docx,
            "odt" => DocumentKind::Odt,
            "epub" => DocumentKind::Epub,
            "html" | "htm" | "xhtml" | "xht" => DocumentKind::Html,
            "md" | "markdown" | "mdown" | "mkd" | "mkdn" => DocumentKind::Markdown,
            "txt" | "text" => DocumentKind::Text,
            _ => return None,
        },
    )
}

/// Binary signatures of formats that are not documents we read.
const FOREIGN: &[(&[u8], &str)] = &[
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xFF\xD8\xFF", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\0", "TIFF image"),
    (b"MM\0*", "TIFF image"),
    (
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        "Legacy Office (.doc, .xls, .ppt)",
    ),
    (b"{\\rtf", "RTF"),
    (b"%!PS", "PostScript"),
    (b"\x1F\x8B", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xFD7zXZ\0", "xz archive"),
    (b"\x28\xB5\x2F\xFD", "zstd archive"),
    (b"7z\xBC\xAF\x27\x1C", "7-Zip archive"),
    (b"Rar!\x1A\x07", "RAR archive"),
    (b"\x7FELF", "program (ELF)"),
    (b"SQLite format 3\0", "SQLite database"),
    (b"GGUF", "GGUF model"),
    (b"OggS", "Ogg audio/video"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"\0asm", "WebAssembly"),
];

/// Detects the kind of `bytes`, using `extension` (without the dot) as a hint. Fails with
/// [`ExtractError::Unsupported`] for other formats, [`ExtractError::Corrupt`] for a damaged
/// container, and [`ExtractError::Empty`] for a file with no bytes.
pub fn detect(bytes: &[u8], extension: Option<&str>) -> Result<DocumentKind, ExtractError> {
    let hinted = extension.and_then(kind_from_extension);
    if bytes.is_empty() {
        return Err(ExtractError::Empty {
            kind: hinted.unwrap_or(DocumentKind::Text),
        });
    }
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Ok(DocumentKind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip_kind(bytes, hinted);
    }
    for (magic, name) in FOREIGN {
        if bytes.starts_with(magic) {
            return Err(ExtractError::Unsupported((*name).to_string()));
        }
    }
    if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        return Err(ExtractError::Unsupported("MP4/HEIF media".into()));
    }
    if bytes.starts_with(b"RIFF") && bytes.len() > 12 {
        let what = match &bytes[8..12] {
            b"WEBP" => "WebP image",
            b"WAVE" => "WAV audio",
            b"AVI " => "AVI video",
            _ => "RIFF media",
        };
        return Err(ExtractError::Unsupported(what.into()));
    }
    if let Some(
        kind @ (DocumentKind::Pdf | DocumentKind::Docx | DocumentKind::Odt | DocumentKind::Epub),
    ) = hinted
    {
        // Named like a binary format we read, without its signature: it was meant to be one.
        return Err(corrupt(kind, "the file does not start like one"));
    }
    if !looks_like_text(bytes) {
        return Err(ExtractError::Unsupported(match extension {
            Some(e) if !e.is_empty() => format!(".{} (binary)", e.trim_start_matches('.')),
            _ => "Binary".into(),
        }));
    }
    if looks_like_html(head) {
        return Ok(DocumentKind::Html);
    }
    Ok(match hinted {
        Some(DocumentKind::Html) => DocumentKind::Html,
        Some(DocumentKind::Markdown) => DocumentKind::Markdown,
        _ => DocumentKind::Text,
    })
}

fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return true;
    }
    let sample = &bytes[..bytes.len().min(8192)];
    if sample.contains(&0) {
        return false;
    }
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C | 0x1B))
        .count();
    control * 100 <= sample.len()
}

fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let start = text.trim_start_matches('\u{feff}').trim_start();
    start.starts_with("<!doctype html")
        || start.starts_with("<html")
        || text.contains("<html")
        || (start.starts_with('<') && (text.contains("<body") || text.contains("<head")))
}

fn zip_kind(bytes: &[u8], hinted: Option<DocumentKind>) -> Result<DocumentKind, ExtractError> {
    let mut archive = match ZipArchive::new(Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => {
            return Err(match hinted {
                Some(kind @ (DocumentKind::Docx | DocumentKind::Odt | DocumentKind::Epub)) => {
                    corrupt(kind, e)
                }
                _ => ExtractError::Unsupported("ZIP archive (damaged)".into()),
            })
        }
    };
    if let Some(index) = archive.index_for_name("mimetype") {
        let mut mime = String::new();
        if let Ok(entry) = archive.by_index(index) {
            // A real mimetype entry is a few dozen bytes; never read more than that.
            let _ = entry.take(200).read_to_string(&mut mime);
        }
        let mime = mime.trim();
        return match mime {
            "application/vnd.oasis.opendocument.text" => Ok(DocumentKind::Odt),
            "application/epub+zip" => Ok(DocumentKind::Epub),
            "application/vnd.oasis.opendocument.spreadsheet" => {
                Err(ExtractError::Unsupported("OpenDocument spreadsheet".into()))
            }
            "application/vnd.oasis.opendocument.presentation" => Err(ExtractError::Unsupported(
                "OpenDocument presentation".into(),
            )),
            _ if mime.starts_with("application/vnd.oasis.opendocument") => {
                Err(ExtractError::Unsupported(format!("OpenDocument ({mime})")))
            }
            _ => match hinted {
                Some(kind @ (DocumentKind::Odt | DocumentKind::Epub)) => {
                    Err(corrupt(kind, "unreadable mimetype entry"))
                }
                _ => Err(ExtractError::Unsupported("ZIP archive".into())),
            },
        };
    }
    if archive.index_for_name("word/document.xml").is_some() {
        return Ok(DocumentKind::Docx);
    }
    if archive.index_for_name("xl/workbook.xml").is_some() {
        return Err(ExtractError::Unsupported("Excel workbook".into()));
    }
    if archive.index_for_name("ppt/presentation.xml").is_some() {
        return Err(ExtractError::Unsupported("PowerPoint presentation".into()));
    }
    if archive.index_for_name("content.xml").is_some() && hinted == Some(DocumentKind::Odt) {
        return Ok(DocumentKind::Odt);
    }
    if archive.index_for_name("META-INF/container.xml").is_some()
        && hinted == Some(DocumentKind::Epub)
    {
        return Ok(DocumentKind::Epub);
    }
    match hinted {
        Some(kind @ (DocumentKind::Docx | DocumentKind::Odt | DocumentKind::Epub)) => {
            Err(corrupt(kind, "the package lacks its main part"))
        }
        _ => Err(ExtractError::Unsupported("ZIP archive".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_beats_extension() {
        assert_eq!(
            detect(b"%PDF-1.4\n", Some("txt")).unwrap(),
            DocumentKind::Pdf
        );
        assert_eq!(
            detect(b"<!DOCTYPE html><p>x", Some("md")).unwrap(),
            DocumentKind::Html
        );
        assert_eq!(
            detect(b"# Title\n", Some("md")).unwrap(),
            DocumentKind::Markdown
        );
        assert_eq!(detect(b"# Title\n", None).unwrap(), DocumentKind::Text);
        assert_eq!(
            detect(b"<p>hi</p>", Some("htm")).unwrap(),
            DocumentKind::Html
        );
        assert_eq!(
            detect("\u{4e2d}\u{6587}".as_bytes(), None).unwrap(),
            DocumentKind::Text
        );
    }

    #[test]
    fn foreign_and_binary_content_is_refused() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        match detect(png, Some("pdf")) {
            Err(ExtractError::Unsupported(what)) => assert_eq!(what, "PNG image"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            detect(b"\0\x01\x02\x03binary", Some("docx")),
            Err(ExtractError::Corrupt {
                kind: DocumentKind::Docx,
                ..
            })
        ));
        assert!(matches!(
            detect(b"\0\x01\x02\x03", Some("bin")),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"", Some("pdf")),
            Err(ExtractError::Empty {
                kind: DocumentKind::Pdf
            })
        ));
    }
}
