//! A flat view of an XML part (DOCX, ODT, EPUB): opening and closing elements by local name
//! (namespace prefix dropped), their attributes, and text with entities resolved.
//!
//! The reader does not build a tree and does not recurse, so nesting depth costs nothing.
//! Mismatched end tags are tolerated; malformed or truncated markup is reported as a corrupt
//! document.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::{corrupt, DocumentKind, ExtractError};

pub(crate) enum Node<'x> {
    /// An element starts; `empty` when it is self-closing (no `Close` follows).
    Open {
        name: &'x str,
        attrs: &'x [(String, String)],
        empty: bool,
    },
    Close {
        name: &'x str,
    },
    Text(&'x str),
}

fn local(qname: &[u8]) -> String {
    let name = match qname.iter().rposition(|&b| b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    };
    String::from_utf8_lossy(name).into_owned()
}

fn attributes(e: &BytesStart<'_>) -> Vec<(String, String)> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .map(|a| {
            let value = a
                .unescape_value()
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
            (local(a.key.as_ref()), value)
        })
        .collect()
}

/// The value of attribute `name` (local name) in `attrs`.
pub(crate) fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        _ => return None,
    })
}

/// Calls `f` for each node of `xml` in document order.
pub(crate) fn walk(
    xml: &str,
    kind: DocumentKind,
    mut f: impl FnMut(Node<'_>),
) -> Result<(), ExtractError> {
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = false;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| {
            corrupt(
                kind,
                format!("XML at byte {}: {e}", reader.error_position()),
            )
        })?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = local(e.name().as_ref());
                let attrs = attributes(&e);
                f(Node::Open {
                    name: &name,
                    attrs: &attrs,
                    empty: false,
                });
            }
            Event::Empty(e) => {
                let name = local(e.name().as_ref());
                let attrs = attributes(&e);
                f(Node::Open {
                    name: &name,
                    attrs: &attrs,
                    empty: true,
                });
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let name = local(e.name().as_ref());
                f(Node::Close { name: &name });
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| corrupt(kind, e))?;
                f(Node::Text(&text));
            }
            Event::CData(t) => {
                let text = String::from_utf8_lossy(&t);
                f(Node::Text(&text));
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => r.decode().ok().and_then(|n| predefined(&n)),
                    Err(_) => None,
                };
                match resolved {
                    Some(c) => f(Node::Text(c.encode_utf8(&mut [0u8; 4]))),
                    None => {
                        let raw = format!("&{};", String::from_utf8_lossy(&r));
                        f(Node::Text(&raw));
                    }
                }
            }
            Event::Eof if depth > 0 => return Err(corrupt(kind, "the XML ends early")),
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The text content of the first element named `name` (local name), if any.
pub(crate) fn first_text(xml: &str, kind: DocumentKind, name: &str) -> Option<String> {
    let mut depth = 0u32;
    let mut found = false;
    let mut out = String::new();
    walk(xml, kind, |node| match node {
        Node::Open { name: n, empty, .. } => {
            if !found && depth == 0 && n == name && !empty {
                depth = 1;
            } else if depth > 0 && !empty {
                depth += 1;
            }
        }
        Node::Close { .. } => {
            if depth > 0 {
                depth -= 1;
                if depth == 0 {
                    found = true;
                }
            }
        }
        Node::Text(t) => {
            if depth > 0 {
                out.push_str(t);
            }
        }
    })
    .ok()?;
    let out = crate::sections::squash_spaces(&out);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_prefixes_and_first_text() {
        let xml = "<?xml version=\"1.0\"?><a:root xmlns:a=\"u\"><a:t x:val=\"1 &amp; 2\">A &amp; B &#x4E2D;&#25991; &lt;&unknown;</a:t><t/></a:root>";
        let mut seen = Vec::new();
        walk(xml, DocumentKind::Docx, |n| match n {
            Node::Open { name, attrs, empty } => seen.push(format!(
                "<{name}{}{}>",
                attr(attrs, "val")
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default(),
                if empty { "/" } else { "" }
            )),
            Node::Close { name } => seen.push(format!("</{name}>")),
            Node::Text(t) => seen.push(t.to_string()),
        })
        .unwrap();
        assert_eq!(
            seen.concat(),
            "<root><t 1 & 2>A & B \u{4e2d}\u{6587} <&unknown;</t><t/></root>"
        );
        assert_eq!(
            first_text(xml, DocumentKind::Docx, "t").as_deref(),
            Some("A & B \u{4e2d}\u{6587} <&unknown;")
        );
        assert!(walk("<a><b></a", DocumentKind::Odt, |_| {}).is_err());
    }
}
