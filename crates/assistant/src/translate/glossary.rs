//! Glossaries: terms whose translation is prescribed. A glossary is given to the model in the
//! prompt (only the terms the text contains) and checked afterwards: a term the model left in the
//! source language is replaced by its prescribed translation ([`repair`]); a term whose
//! prescribed translation is still missing from the result is reported as a [`GlossaryIssue`].
//!
//! Matching ignores case. In languages written with spaces a term matches at the start of a word
//! and may carry a short ending (`file` matches `files`, `Datei` matches `Dateien`); in Chinese
//! and Japanese it matches anywhere.
//!
//! Glossary files ([`parse_glossary`]) have one entry per line, `term = translation`,
//! `term<TAB>translation` or `term,translation`; empty lines and lines starting with `#` are
//! skipped. A gettext catalog (`.mo`) also works: its short messages become entries.

use serde::{Deserialize, Serialize};

use super::gettext::MoCatalog;
use super::lang::Language;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlossaryTerm {
    pub source: String,
    pub target: String,
}

/// A prescribed translation that did not come out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlossaryIssue {
    /// The block (see the translation's segments) where the term occurs.
    pub segment: usize,
    pub source_term: String,
    pub expected: String,
}

/// Longest ending a term may carry and still match (letters).
const MAX_ENDING: usize = 3;

/// Whether `term` occurs in `text` (see the module header for the rules).
pub fn contains_term(text: &str, term: &str, language: Language) -> bool {
    let term = term.trim();
    if term.is_empty() {
        return false;
    }
    let text_l = text.to_lowercase();
    let term_l = term.to_lowercase();
    if language.unspaced() {
        return text_l.contains(&term_l);
    }
    let mut from = 0;
    while let Some(p) = text_l[from..].find(&term_l) {
        let start = from + p;
        let end = start + term_l.len();
        let before_ok = text_l[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let ending = text_l[end..]
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .count();
        if before_ok && ending <= MAX_ENDING {
            return true;
        }
        from = start + text_l[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The terms of `glossary` that occur in `text`, longest first (so a prompt lists
/// "file system" before "file").
pub fn relevant<'a>(
    glossary: &'a [GlossaryTerm],
    text: &str,
    language: Language,
) -> Vec<&'a GlossaryTerm> {
    let mut found: Vec<&GlossaryTerm> = glossary
        .iter()
        .filter(|t| !t.target.trim().is_empty() && contains_term(text, &t.source, language))
        .collect();
    found.sort_by(|a, b| {
        b.source
            .len()
            .cmp(&a.source.len())
            .then(a.source.cmp(&b.source))
    });
    found.dedup_by(|a, b| a.source.eq_ignore_ascii_case(&b.source));
    found
}

/// Where the model left a relevant term untranslated (the source term itself appears in the
/// translation, as a word, and its prescribed translation does not), puts the prescribed
/// translation in its place, keeping an initial capital. Returns the repaired text and how many
/// terms were replaced. Terms that came out as some other word are left for [`check`] to flag.
pub fn repair(
    glossary: &[GlossaryTerm],
    source_text: &str,
    translation: &str,
    source: Language,
    target: Language,
) -> (String, usize) {
    let mut out = translation.to_string();
    let mut replaced = 0;
    for t in relevant(glossary, source_text, source) {
        let (from, to) = (t.source.trim(), t.target.trim());
        if from.eq_ignore_ascii_case(to) || contains_term(&out, to, target) {
            continue;
        }
        let Some((start, end)) = find_word(&out, from) else {
            continue;
        };
        let found = &out[start..end];
        let capital = found.chars().next().is_some_and(char::is_uppercase)
            && !from.chars().next().is_some_and(char::is_uppercase);
        let mut with = to.to_string();
        if capital {
            let mut cs = with.chars();
            if let Some(first) = cs.next() {
                with = first.to_uppercase().chain(cs).collect();
            }
        }
        out.replace_range(start..end, &with);
        replaced += 1;
    }
    (out, replaced)
}

/// The byte range of the first whole-word, case-insensitive occurrence of `word` in `text`.
fn find_word(text: &str, word: &str) -> Option<(usize, usize)> {
    if word.is_empty() {
        return None;
    }
    let lower: Vec<(usize, char)> = text.char_indices().collect();
    let want: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    'outer: for i in 0..lower.len() {
        if i > 0 && lower[i - 1].1.is_alphanumeric() {
            continue;
        }
        let mut j = i;
        for w in &want {
            match lower.get(j) {
                Some((_, c)) if c.to_lowercase().eq(std::iter::once(*w)) => j += 1,
                _ => continue 'outer,
            }
        }
        if lower.get(j).is_some_and(|(_, c)| c.is_alphanumeric()) {
            continue;
        }
        let end = lower.get(j).map_or(text.len(), |(b, _)| *b);
        return Some((lower[i].0, end));
    }
    None
}

/// The relevant terms whose translation is missing from `translation`.
pub fn check(
    glossary: &[GlossaryTerm],
    segment: usize,
    source_text: &str,
    translation: &str,
    source: Language,
    target: Language,
) -> Vec<GlossaryIssue> {
    relevant(glossary, source_text, source)
        .into_iter()
        .filter(|t| !contains_term(translation, &t.target, target))
        .map(|t| GlossaryIssue {
            segment,
            source_term: t.source.clone(),
            expected: t.target.clone(),
        })
        .collect()
}

/// Reads a glossary file's text (see the module header). Errors name the line.
pub fn parse_glossary(text: &str) -> Result<Vec<GlossaryTerm>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim().trim_start_matches('\u{feff}');
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let split = l
            .split_once('\t')
            .or_else(|| l.split_once(" = "))
            .or_else(|| l.split_once('='))
            .or_else(|| l.split_once(','));
        let Some((a, b)) = split else {
            return Err(format!(
                "line {}: expected `term = translation`, found {l:?}",
                n + 1
            ));
        };
        let (a, b) = (unquote(a), unquote(b));
        if a.is_empty() || b.is_empty() {
            return Err(format!(
                "line {}: a term or its translation is empty",
                n + 1
            ));
        }
        out.push(GlossaryTerm {
            source: a.to_string(),
            target: b.to_string(),
        });
    }
    Ok(out)
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .trim()
}

/// Entries from a gettext catalog: its translated messages of at most `max_words` words with
/// no format directives, as glossary terms.
pub fn from_catalog(catalog: &MoCatalog, max_words: usize) -> Vec<GlossaryTerm> {
    catalog
        .messages()
        .iter()
        .filter(|m| m.context.is_none() && m.plural_id.is_none())
        .filter_map(|m| {
            let t = m.translations.first()?.trim();
            let s = m.id.trim();
            let ok = !t.is_empty()
                && !s.contains('%')
                && !s.contains('\n')
                && s.split_whitespace().count() <= max_words;
            ok.then(|| GlossaryTerm {
                source: s.trim_end_matches([':', '.', '…']).trim().to_string(),
                target: t
                    .trim_end_matches([':', '.', '…', '：', '。'])
                    .trim()
                    .to_string(),
            })
        })
        .filter(|t| !t.source.is_empty() && !t.target.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(s: &str, t: &str) -> GlossaryTerm {
        GlossaryTerm {
            source: s.into(),
            target: t.into(),
        }
    }

    #[test]
    fn matching_rules() {
        use Language::*;
        assert!(contains_term("Open the File.", "file", En));
        assert!(contains_term("two files", "file", En));
        assert!(!contains_term("a profile", "file", En), "not inside a word");
        assert!(!contains_term("filesystems", "file", En), "ending too long");
        assert!(contains_term("Die Dateien", "Datei", De));
        assert!(contains_term("打开文件。", "文件", Zh));
        assert!(contains_term("l’Hôtel de ville", "hôtel", Fr));
        assert!(!contains_term("anything", "", En));
    }

    #[test]
    fn relevant_terms_longest_first_and_missing_ones_flagged() {
        let g = vec![
            term("file", "fichier"),
            term("file system", "système de fichiers"),
            term("kernel", "noyau"),
        ];
        let r = relevant(&g, "The file system is full.", Language::En);
        assert_eq!(
            r.iter().map(|t| t.source.as_str()).collect::<Vec<_>>(),
            vec!["file system", "file"]
        );
        let issues = check(
            &g,
            3,
            "The file system and the kernel.",
            "Le système de fichiers et le cœur.",
            Language::En,
            Language::Fr,
        );
        assert_eq!(
            issues,
            vec![GlossaryIssue {
                segment: 3,
                source_term: "kernel".into(),
                expected: "noyau".into()
            }]
        );
    }

    #[test]
    fn glossary_files() {
        let g = parse_glossary("# comment\n\nfile = fichier\nkernel\tnoyau\n\"log\",\"journal\"\n")
            .unwrap();
        assert_eq!(
            g,
            vec![
                term("file", "fichier"),
                term("kernel", "noyau"),
                term("log", "journal")
            ]
        );
        let e = parse_glossary("ok = fine\nno separator here\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
        assert!(parse_glossary(" = x").is_err());
    }

    #[test]
    fn terms_from_a_catalog() {
        let bytes = super::super::gettext::tests::build(
            &[
                (b"", b"Content-Type: text/plain; charset=UTF-8\n"),
                (b"File:", b"Fichier :"),
                (b"Open %s", b"Ouvrir %s"),
                (b"A much longer sentence than a term.", b"Une phrase."),
            ],
            false,
        );
        let c = MoCatalog::parse(&bytes).unwrap();
        assert_eq!(from_catalog(&c, 3), vec![term("File", "Fichier")]);
    }

    #[test]
    fn repair_replaces_a_term_left_untranslated() {
        let g = vec![
            GlossaryTerm {
                source: "password".into(),
                target: "code secret".into(),
            },
            GlossaryTerm {
                source: "settings".into(),
                target: "préférences".into(),
            },
        ];
        let src = "Open the settings and choose a new password.";
        let (fixed, n) = repair(
            &g,
            src,
            "Ouvrez les préférences et choisissez une nouvelle password.",
            Language::En,
            Language::Fr,
        );
        assert_eq!(
            fixed,
            "Ouvrez les préférences et choisissez une nouvelle code secret."
        );
        assert_eq!(n, 1);
        assert!(check(&g, 0, src, &fixed, Language::En, Language::Fr).is_empty());
        // A capitalised occurrence keeps its capital; a word that only contains the term is left.
        let (fixed, n) = repair(&g, src, "Password: passwords.", Language::En, Language::Fr);
        assert_eq!(fixed, "Code secret: passwords.");
        assert_eq!(n, 1);
        // A term rendered as some other word is not guessed at: check flags it.
        let (fixed, n) = repair(&g, src, "Ouvrez les réglages.", Language::En, Language::Fr);
        assert_eq!((fixed.as_str(), n), ("Ouvrez les réglages.", 0));
        assert_eq!(
            check(&g, 0, src, &fixed, Language::En, Language::Fr).len(),
            2
        );
    }
}
