//! EPUB books: the spine's XHTML documents in reading order, through the HTML extractor, with
//! the package's `dc:title`.

use crate::budget::Budget;
use crate::html::HtmlWalker;
use crate::xml::{attr, first_text, walk, Node};
use crate::zipped::Package;
use crate::{corrupt, Body, DocumentKind, ExtractError};

const KIND: DocumentKind = DocumentKind::Epub;

/// Resolves `href` (percent-encoded, relative to `base`) to a path inside the package.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let mut decoded = Vec::with_capacity(href.len());
    let bytes = href.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let href = String::from_utf8_lossy(&decoded);
    let mut parts: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in href.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Body, ExtractError> {
    let mut pkg = Package::open(bytes, KIND)?;
    let container = pkg
        .read_text("META-INF/container.xml", budget)?
        .ok_or_else(|| corrupt(KIND, "META-INF/container.xml is missing"))?;
    let mut opf_path = None;
    walk(&container, KIND, |node| {
        if let Node::Open {
            name: "rootfile",
            attrs,
            ..
        } = node
        {
            if opf_path.is_none() {
                opf_path = attr(attrs, "full-path").map(str::to_string);
            }
        }
    })?;
    let opf_path = opf_path.ok_or_else(|| corrupt(KIND, "the package names no content file"))?;
    let opf = pkg
        .read_text(&opf_path, budget)?
        .ok_or_else(|| corrupt(KIND, format!("{opf_path} is missing")))?;
    let base = opf_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");

    let mut manifest: Vec<(String, String, String)> = Vec::new();
    let mut spine: Vec<String> = Vec::new();
    walk(&opf, KIND, |node| {
        if let Node::Open { name, attrs, .. } = node {
            match name {
                "item" => {
                    if let (Some(id), Some(href)) = (attr(attrs, "id"), attr(attrs, "href")) {
                        let media = attr(attrs, "media-type").unwrap_or_default();
                        manifest.push((id.to_string(), href.to_string(), media.to_string()));
                    }
                }
                "itemref" => {
                    if let Some(id) = attr(attrs, "idref") {
                        spine.push(id.to_string());
                    }
                }
                _ => {}
            }
        }
    })?;
    let title = first_text(&opf, KIND, "title");

    let mut walker = HtmlWalker::default();
    for id in &spine {
        let Some((_, href, media)) = manifest.iter().find(|(i, _, _)| i == id) else {
            continue;
        };
        if !(media.contains("html") || media.is_empty()) {
            continue;
        }
        let path = resolve(base, href);
        let Some(doc) = pkg.read(&path, budget)? else {
            continue;
        };
        walker.feed(&crate::text::decode_html(&doc));
    }
    let mut body = walker.finish();
    if title.is_some() {
        body.title = title;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(
            resolve("OEBPS", "text/ch%201.xhtml#x"),
            "OEBPS/text/ch 1.xhtml"
        );
        assert_eq!(resolve("OEBPS/a", "../b.xhtml"), "OEBPS/b.xhtml");
        assert_eq!(resolve("", "c.xhtml"), "c.xhtml");
        assert_eq!(resolve("x", "%zz%4"), "x/%zz%4");
    }
}
