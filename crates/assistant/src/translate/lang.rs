//! Languages Hearth translates between, and detecting the language of a text.
//!
//! [`Language`] is the closed set offered in the translation view: English, Chinese (Simplified),
//! French, German, Spanish, Japanese, Korean, Russian, Italian, Portuguese. Codes are ISO 639-1;
//! [`Language::parse`] also takes region and script tags (`zh-CN`, `pt_BR`, `zh-Hans`) and
//! English names.
//!
//! [`detect`] works on any length of text, from a word to a book, with no model: the writing
//! system decides Chinese, Japanese, Korean and Russian; among Latin-script languages, scores
//! from function words, letters with diacritics and characteristic letter groups decide. It
//! looks at the first [`DETECT_SAMPLE_CHARS`] characters only, so it costs the same on long
//! documents. It returns None when the text has no letters; a short or ambiguous text gets a low
//! confidence, and the caller should let the user override it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Zh,
    Fr,
    De,
    Es,
    Ja,
    Ko,
    Ru,
    It,
    Pt,
}

/// Characters of a text that [`detect`] reads.
pub const DETECT_SAMPLE_CHARS: usize = 20_000;

impl Language {
    pub const ALL: [Language; 10] = [
        Language::En,
        Language::Zh,
        Language::Fr,
        Language::De,
        Language::Es,
        Language::Ja,
        Language::Ko,
        Language::Ru,
        Language::It,
        Language::Pt,
    ];

    /// ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
            Language::Fr => "fr",
            Language::De => "de",
            Language::Es => "es",
            Language::Ja => "ja",
            Language::Ko => "ko",
            Language::Ru => "ru",
            Language::It => "it",
            Language::Pt => "pt",
        }
    }

    /// The name used in prompts (models are instructed in English).
    pub fn english_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Zh => "Simplified Chinese",
            Language::Fr => "French",
            Language::De => "German",
            Language::Es => "Spanish",
            Language::Ja => "Japanese",
            Language::Ko => "Korean",
            Language::Ru => "Russian",
            Language::It => "Italian",
            Language::Pt => "Portuguese",
        }
    }

    /// The language's name for itself, for menus.
    pub fn native_name(self) -> &'static str {
        match self {
            Language::En => "English",
            Language::Zh => "简体中文",
            Language::Fr => "Français",
            Language::De => "Deutsch",
            Language::Es => "Español",
            Language::Ja => "日本語",
            Language::Ko => "한국어",
            Language::Ru => "Русский",
            Language::It => "Italiano",
            Language::Pt => "Português",
        }
    }

    /// "Write the summary in this language.", said in the language itself: the last line of a
    /// summary prompt (small models follow best what they read last, in the language asked for).
    pub fn summary_instruction(self) -> &'static str {
        match self {
            Language::En => "Write the summary in English.",
            Language::Zh => "请用简体中文写摘要。",
            Language::Fr => "Rédigez le résumé en français.",
            Language::De => "Schreiben Sie die Zusammenfassung auf Deutsch.",
            Language::Es => "Escribe el resumen en español.",
            Language::Ja => "要約は日本語で書いてください。",
            Language::Ko => "요약은 한국어로 작성해 주세요.",
            Language::Ru => "Напишите краткое содержание на русском языке.",
            Language::It => "Scrivi il riassunto in italiano.",
            Language::Pt => "Escreva o resumo em português.",
        }
    }

    /// Whether the language writes words without spaces between them.
    pub fn unspaced(self) -> bool {
        matches!(self, Language::Zh | Language::Ja)
    }

    /// `en`, `EN`, `zh-CN`, `zh_Hans`, `pt-BR`, `French`, ... Traditional Chinese tags
    /// (`zh-TW`, `zh-Hant`, `zh-HK`) are not Simplified Chinese and return None.
    pub fn parse(tag: &str) -> Option<Language> {
        let t = tag.trim().to_ascii_lowercase().replace('_', "-");
        if t.starts_with("zh-") && (t.contains("hant") || t.contains("tw") || t.contains("hk")) {
            return None;
        }
        let primary = t.split('-').next().unwrap_or("");
        Language::ALL.into_iter().find(|l| {
            l.code() == primary
                || l.english_name().eq_ignore_ascii_case(&t)
                || (*l == Language::Zh && t == "chinese")
        })
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detection {
    pub language: Language,
    /// 0 (a guess) to 1 (certain).
    pub confidence: f32,
}

#[derive(Default)]
struct ScriptCounts {
    han: usize,
    kana: usize,
    hangul: usize,
    cyrillic: usize,
    latin: usize,
}

fn count_scripts(text: &str) -> ScriptCounts {
    let mut c = ScriptCounts::default();
    for ch in text.chars() {
        let u = ch as u32;
        match u {
            0x3040..=0x30ff | 0x31f0..=0x31ff | 0xff66..=0xff9f => c.kana += 1,
            0x4e00..=0x9fff | 0x3400..=0x4dbf | 0xf900..=0xfaff | 0x20000..=0x2ffff => c.han += 1,
            0xac00..=0xd7af | 0x1100..=0x11ff | 0x3130..=0x318f => c.hangul += 1,
            0x0400..=0x04ff => c.cyrillic += 1,
            _ if ch.is_alphabetic() && (ch.is_ascii() || (0x00c0..=0x024f).contains(&u)) => {
                c.latin += 1
            }
            _ => {}
        }
    }
    c
}

const LATIN: [Language; 6] = [
    Language::En,
    Language::Fr,
    Language::De,
    Language::Es,
    Language::It,
    Language::Pt,
];

fn latin_index(l: Language) -> usize {
    LATIN.iter().position(|x| *x == l).unwrap_or(0)
}

/// Frequent, mostly grammatical words. A word listed for k languages counts 1/k for each.
const WORDS: [(Language, &str); 6] = [
    (
        Language::En,
        "the of and to is that it for was on are with as be this by not or from have at an but \
         they which you we his her she he has had will would can could should there their what \
         when where who all been if do does did were so than then them these those its into only \
         also more some any other about after before your our my how why hello thanks thank \
         please yes must may each using without while through between because over under here \
         just very new a in no out up get set use used too many much one two first last next \
         found given specified invalid unknown missing empty cannot failed supported file files \
         directory read write print show list create remove open close don't can't doesn't \
         isn't won't it's that's there's",
    ),
    (
        Language::Fr,
        "le la les des du un une et est sont dans pour pas que qui sur au aux ce cette ces il \
         elle ils nous vous je avec par mais ou où plus être avoir fait leur leurs son sa ses mon \
         ma mes ne se en l' d' qu' n' s' c' j' bonjour merci oui non très aussi comme tout tous \
         toute sans chaque lors peut doit déjà été après avant entre sous vers chez quand donc \
         alors ainsi fichier fichiers afficher votre notre",
    ),
    (
        Language::De,
        "der die das den dem des ein eine einen einem einer und ist sind nicht mit von zu zum \
         zur auf für im in an auch es sich wird werden wurde kann muss oder aber wenn dass als bei \
         nach aus noch nur wie über unter ich du sie wir ihr hallo danke bitte ja nein sehr kein \
         keine diese dieser dieses alle mehr ohne datei dateien jede jeden jeder gibt haben hat \
         war ihre ihren",
    ),
    (
        Language::Es,
        "el la los las un una unos unas y es son está están en de del al que por para con sin no \
         se su sus lo le les como más pero o u si sí hola gracias muy también cuando donde este \
         esta estos estas ese esa hay ser estar todo todos cada entre desde hasta sobre fichero \
         ficheros archivo archivos muestra ya qué cómo usted puede debe han ha fue",
    ),
    (
        Language::It,
        "il lo la gli le un uno una e è di del della dei degli delle da dal in nel nella con su \
         per tra fra che non si sono come più ma anche questo questa questi quello ciao grazie sì \
         molto ogni tutto tutti essere stato può deve sul sulla alla al ai all' dell' nell' l' \
         un' perché quando dove",
    ),
    (
        Language::Pt,
        "o a os as um uma uns umas e é de do da dos das em no na nos nas ao à aos com sem por \
         para pelo pela que não se seu sua seus suas mais mas ou como olá obrigado obrigada muito \
         também quando onde este esta isso isto esse essa ser estar está são foi tem há você \
         arquivo arquivos pode deve já cada entre até sobre",
    ),
];

/// Letters with diacritics: (letter, weights for en fr de es it pt).
const LETTERS: [(char, [f32; 6]); 24] = [
    ('ß', [0.0, 0.0, 3.0, 0.0, 0.0, 0.0]),
    ('ä', [0.0, 0.0, 2.0, 0.0, 0.0, 0.0]),
    ('ö', [0.0, 0.0, 2.0, 0.0, 0.0, 0.0]),
    ('ü', [0.0, 0.0, 2.0, 0.2, 0.0, 0.0]),
    ('ñ', [0.0, 0.0, 0.0, 3.0, 0.0, 0.0]),
    ('¿', [0.0, 0.0, 0.0, 3.0, 0.0, 0.0]),
    ('¡', [0.0, 0.0, 0.0, 3.0, 0.0, 0.0]),
    ('ç', [0.0, 1.5, 0.0, 0.0, 0.0, 1.5]),
    ('œ', [0.0, 3.0, 0.0, 0.0, 0.0, 0.0]),
    ('è', [0.0, 1.2, 0.0, 0.0, 1.2, 0.0]),
    ('ê', [0.0, 1.5, 0.0, 0.0, 0.0, 1.0]),
    ('ë', [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
    ('ï', [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
    ('î', [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]),
    ('û', [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]),
    ('â', [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
    ('ô', [0.0, 1.2, 0.0, 0.0, 0.0, 1.0]),
    ('ù', [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
    ('à', [0.0, 1.0, 0.0, 0.0, 1.0, 0.8]),
    ('ì', [0.0, 0.0, 0.0, 0.0, 2.0, 0.0]),
    ('ò', [0.0, 0.0, 0.0, 0.0, 2.0, 0.0]),
    ('ã', [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ('õ', [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]),
    ('é', [0.0, 1.0, 0.0, 0.6, 0.3, 0.6]),
];

/// Acute accents shared by Spanish and Portuguese.
const ACUTE: [(char, [f32; 6]); 3] = [
    ('á', [0.0, 0.0, 0.0, 1.2, 0.0, 1.2]),
    ('í', [0.0, 0.0, 0.0, 1.2, 0.0, 1.0]),
    ('ó', [0.0, 0.0, 0.0, 1.2, 0.0, 1.2]),
];

/// Letter groups inside words; `^`/`$` anchor at the word's start/end.
const GROUPS: &[(&str, Language, f32)] = &[
    ("th", Language::En, 0.5),
    ("n't$", Language::En, 2.0),
    ("'s$", Language::En, 0.8),
    ("ing$", Language::En, 1.0),
    ("^wh", Language::En, 0.8),
    ("ght", Language::En, 1.0),
    ("ly$", Language::En, 0.8),
    ("oo", Language::En, 0.4),
    ("ee", Language::En, 0.3),
    ("w", Language::En, 0.3),
    ("tion", Language::En, 0.3),
    ("ed$", Language::En, 0.4),
    ("sch", Language::De, 1.2),
    ("cht", Language::De, 1.0),
    ("ung$", Language::De, 1.0),
    ("ei", Language::De, 0.4),
    ("tz", Language::De, 0.8),
    ("lich", Language::De, 1.0),
    ("keit", Language::De, 1.5),
    ("heit", Language::De, 1.5),
    ("^z", Language::De, 0.4),
    ("k", Language::De, 0.2),
    ("w", Language::De, 0.2),
    ("eau", Language::Fr, 1.5),
    ("aux$", Language::Fr, 1.0),
    ("oi", Language::Fr, 0.5),
    ("ou", Language::Fr, 0.3),
    ("ez$", Language::Fr, 1.0),
    ("ais", Language::Fr, 0.6),
    ("ait$", Language::Fr, 0.6),
    ("eur", Language::Fr, 0.8),
    ("eux$", Language::Fr, 1.2),
    ("tion", Language::Fr, 0.3),
    ("ción", Language::Es, 2.0),
    ("ciones$", Language::Es, 2.0),
    ("dad$", Language::Es, 1.5),
    ("os$", Language::Es, 0.4),
    ("ue", Language::Es, 0.3),
    ("zione", Language::It, 2.0),
    ("zioni$", Language::It, 2.0),
    ("gli", Language::It, 1.5),
    ("cch", Language::It, 1.5),
    ("zz", Language::It, 1.2),
    ("ggi", Language::It, 1.0),
    ("i$", Language::It, 0.4),
    ("o$", Language::It, 0.25),
    ("o$", Language::Es, 0.1),
    ("o$", Language::Pt, 0.1),
    ("ato$", Language::It, 0.6),
    ("ata$", Language::It, 0.4),
    ("uto$", Language::It, 0.8),
    ("are$", Language::It, 0.5),
    ("ere$", Language::It, 0.6),
    ("ione$", Language::It, 0.8),
    ("tt", Language::It, 0.4),
    ("ado$", Language::Es, 0.4),
    ("ado$", Language::Pt, 0.4),
    ("ar$", Language::Es, 0.3),
    ("ar$", Language::Pt, 0.3),
    ("ll", Language::Es, 0.3),
    ("ie", Language::Es, 0.3),
    ("vel$", Language::Pt, 1.2),
    ("eiro$", Language::Pt, 0.8),
    ("m$", Language::Pt, 0.6),
    ("ss", Language::Pt, 0.2),
    ("ção", Language::Pt, 3.0),
    ("ções$", Language::Pt, 3.0),
    ("ão$", Language::Pt, 2.5),
    ("nh", Language::Pt, 1.2),
    ("lh", Language::Pt, 1.2),
];

fn group_hits(word: &str, pattern: &str) -> usize {
    let start = pattern.starts_with('^');
    let end = pattern.ends_with('$');
    let p = pattern.trim_start_matches('^').trim_end_matches('$');
    match (start, end) {
        (true, true) => usize::from(word == p),
        (true, false) => usize::from(word.starts_with(p)),
        (false, true) => usize::from(word.ends_with(p)),
        (false, false) => word.matches(p).count(),
    }
}

fn word_weights() -> std::collections::HashMap<&'static str, Vec<Language>> {
    let mut m: std::collections::HashMap<&'static str, Vec<Language>> = Default::default();
    for (lang, words) in WORDS {
        for w in words.split_whitespace() {
            let e = m.entry(w).or_default();
            if !e.contains(&lang) {
                e.push(lang);
            }
        }
    }
    m
}

fn latin_scores(text: &str) -> [f32; 6] {
    let words_table = word_weights();
    let mut s = [0f32; 6];
    let lower = text.to_lowercase();
    for ch in lower.chars() {
        for (c, w) in LETTERS.iter().chain(ACUTE.iter()) {
            if *c == ch {
                for i in 0..6 {
                    s[i] += w[i];
                }
            }
        }
    }
    // Words: letters and apostrophes; a French/Italian elision ("l'", "dell'") is its own word.
    let mut words: Vec<String> = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '’')) {
        let raw = raw.replace('’', "'");
        // English contractions stay whole ("doesn't"); other apostrophes mark elisions.
        if let Some((_, tail)) = raw.rsplit_once('\'') {
            if ["t", "s", "re", "ve", "ll", "d", "m"].contains(&tail) && raw.len() > tail.len() + 2
            {
                words.push(raw.clone());
                continue;
            }
        }
        let mut rest = raw.as_str();
        while let Some(p) = rest.find('\'') {
            let head = &rest[..=p];
            if head.len() > 1 {
                words.push(head.to_string());
            }
            rest = &rest[p + 1..];
        }
        if !rest.is_empty() {
            words.push(rest.to_string());
        }
    }
    for w in &words {
        if let Some(langs) = words_table.get(w.as_str()) {
            let share = 1.5 / langs.len() as f32;
            for l in langs {
                s[latin_index(*l)] += share;
            }
        }
        let bare = w.trim_end_matches('\'');
        if bare.chars().count() < 2 {
            continue;
        }
        for &(pattern, lang, weight) in GROUPS {
            let n = group_hits(bare, pattern);
            if n > 0 {
                s[latin_index(lang)] += weight * n as f32;
            }
        }
    }
    s
}

/// The language of `text`, or None when it has no letters.
pub fn detect(text: &str) -> Option<Detection> {
    let sample: String = text.chars().take(DETECT_SAMPLE_CHARS).collect();
    let c = count_scripts(&sample);
    let letters = c.han + c.kana + c.hangul + c.cyrillic + c.latin;
    if letters == 0 {
        return None;
    }
    let share = |n: usize| n as f32 / letters as f32;
    let cjk = c.han + c.kana;
    let scripted = |language, n: usize| {
        Some(Detection {
            language,
            confidence: (share(n) * 1.2).min(1.0) * (n.min(4) as f32 / 4.0).max(0.5),
        })
    };
    if share(c.hangul) >= 0.3 {
        return scripted(Language::Ko, c.hangul);
    }
    if cjk > 0 && share(cjk) >= 0.3 {
        // Japanese mixes kana into almost every sentence; Chinese has none.
        if c.kana > 0 && c.kana as f32 >= 0.1 * cjk as f32 {
            return scripted(Language::Ja, cjk);
        }
        return scripted(Language::Zh, cjk);
    }
    if share(c.cyrillic) >= 0.5 {
        return scripted(Language::Ru, c.cyrillic);
    }
    if c.latin == 0 {
        // Only a few CJK/Cyrillic characters inside other symbols.
        let (l, n) = [
            (Language::Ko, c.hangul),
            (Language::Ja, c.kana),
            (Language::Zh, c.han),
            (Language::Ru, c.cyrillic),
        ]
        .into_iter()
        .max_by_key(|(_, n)| *n)?;
        return scripted(l, n);
    }
    let s = latin_scores(&sample);
    let mut order: Vec<usize> = (0..6).collect();
    order.sort_by(|a, b| s[*b].total_cmp(&s[*a]).then(a.cmp(b)));
    let (best, second) = (s[order[0]], s[order[1]]);
    if best <= 0.0 {
        // No evidence at all (a name, an acronym): English is the likeliest guess.
        return Some(Detection {
            language: Language::En,
            confidence: 0.1,
        });
    }
    let margin = (best - second) / best;
    let evidence = (best / 6.0).min(1.0);
    Some(Detection {
        language: LATIN[order[0]],
        confidence: (margin * 0.6 + evidence * 0.4).clamp(0.05, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(t: &str) -> Language {
        detect(t).unwrap().language
    }

    #[test]
    fn parses_codes_tags_and_names() {
        assert_eq!(Language::parse("zh-CN"), Some(Language::Zh));
        assert_eq!(Language::parse("zh_Hans"), Some(Language::Zh));
        assert_eq!(Language::parse("zh-TW"), None);
        assert_eq!(Language::parse("pt-BR"), Some(Language::Pt));
        assert_eq!(Language::parse("EN"), Some(Language::En));
        assert_eq!(Language::parse("French"), Some(Language::Fr));
        assert_eq!(Language::parse("chinese"), Some(Language::Zh));
        assert_eq!(Language::parse("xx"), None);
        assert_eq!(Language::parse(""), None);
        for l in Language::ALL {
            assert_eq!(Language::parse(l.code()), Some(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.code()));
        }
    }

    #[test]
    fn no_letters_no_language() {
        assert!(detect("").is_none());
        assert!(detect("  123 + 456 = 579 !!! ").is_none());
    }

    #[test]
    fn scripts_decide_cjk_and_cyrillic() {
        assert_eq!(lang("你好"), Language::Zh);
        assert_eq!(lang("这是一个测试。"), Language::Zh);
        assert_eq!(lang("SOCKSv5 代理不支持提供的地址类型。"), Language::Zh);
        assert_eq!(lang("こんにちは"), Language::Ja);
        assert_eq!(lang("東京は日本の首都です。"), Language::Ja);
        assert_eq!(lang("안녕하세요"), Language::Ko);
        assert_eq!(lang("Привет, мир"), Language::Ru);
    }

    #[test]
    fn short_latin_inputs() {
        for (t, l) in [
            ("Hello", Language::En),
            ("Thank you very much", Language::En),
            ("the file", Language::En),
            ("Bonjour", Language::Fr),
            ("Merci beaucoup", Language::Fr),
            ("le fichier", Language::Fr),
            ("Hallo", Language::De),
            ("Danke schön", Language::De),
            ("die Datei", Language::De),
            ("Straße", Language::De),
            ("Hola", Language::Es),
            ("¿Dónde está?", Language::Es),
            ("el archivo", Language::Es),
            ("Ciao", Language::It),
            ("grazie mille", Language::It),
            ("Olá", Language::Pt),
            ("obrigado", Language::Pt),
            ("informação", Language::Pt),
        ] {
            assert_eq!(lang(t), l, "{t:?}");
        }
    }

    #[test]
    fn long_texts_are_confident() {
        let en = "The quick brown fox jumps over the lazy dog. It was the best of times, it \
                  was the worst of times, and everyone knew that the end was near.";
        let d = detect(&en.repeat(200)).unwrap();
        assert_eq!(d.language, Language::En);
        assert!(d.confidence > 0.5, "{d:?}");
        let zh = "我们今天去公园散步，天气非常好。".repeat(500);
        let d = detect(&zh).unwrap();
        assert_eq!(d.language, Language::Zh);
        assert!(d.confidence > 0.9, "{d:?}");
    }
}
