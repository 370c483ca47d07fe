//! Choosing the model for a language pair.
//!
//! Each installed model is described from its GGUF metadata ([`describe`]): its family (for the
//! prompt shape) and the languages it handles well. Languages come from the curated catalog
//! (`models/*.toml` through `hearth-catalog`): the entry whose `family` occurs in the model's
//! `general.name`/`general.basename` (`Qwen2.5 Coder 0.5B` is of family `qwen2.5`), the one
//! closest in size. A model the catalog does not know gets the languages of its architecture
//! from [`FALLBACK`], a table documented there, and English only when even that is unknown.
//!
//! [`choose`] prefers, in order: a model that handles both languages; one with a chat template
//! (plain completion follows instructions poorly); the largest; the user's default model. The
//! choice says why it was made, so the user can be told which model translated and why.

use std::path::{Path, PathBuf};

use hearth_engine::gguf::ModelFile;
use serde::{Deserialize, Serialize};

use super::lang::Language;
use super::prompt::ModelFamily;

/// A model that could translate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelProfile {
    /// The installed model's id, or the file's path for a file given directly.
    pub id: String,
    pub name: String,
    pub path: PathBuf,
    pub arch: String,
    pub parameters: u64,
    pub family: ModelFamily,
    pub languages: Vec<Language>,
    /// Where `languages` came from: `catalog:<entry id>` or `architecture table`.
    pub languages_from: String,
    pub context_length: u32,
}

/// The model a translation uses, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelChoice {
    pub model: ModelProfile,
    /// Whether the model is known to handle both languages.
    pub supports_pair: bool,
    /// A sentence for people: which model and why.
    pub reason: String,
}

/// Languages per GGUF architecture for models the catalog does not know. From the model
/// makers' published language lists: Qwen 2.5/3 name 29+ languages including all of Hearth's;
/// Gemma 3 is trained on 140 languages; Llama 3.1/3.2 officially support en, de, fr, it, pt, hi,
/// es, th; Phi-3/Phi-4 mini are documented as primarily English. (`Language::ALL` is every
/// language Hearth offers.)
pub const FALLBACK: &[(&str, &[Language])] = &[
    ("qwen2", &Language::ALL),
    ("qwen3", &Language::ALL),
    ("gemma3", &Language::ALL),
    (
        "llama",
        &[
            Language::En,
            Language::De,
            Language::Fr,
            Language::It,
            Language::Pt,
            Language::Es,
        ],
    ),
    ("phi3", &[Language::En]),
];

fn normalize(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .collect()
}

/// Languages from the catalog entry of the model's family closest in size.
fn catalog_languages(names: &str, parameters: u64) -> Option<(Vec<Language>, String)> {
    let catalog = hearth_catalog::Catalog::builtin().ok()?;
    let names = normalize(names);
    let entry = catalog
        .entries()
        .iter()
        .filter(|e| names.contains(&normalize(&e.family)))
        // The longest family name wins (`qwen2.5` over `qwen2`), then the closest size.
        .min_by_key(|e| {
            (
                usize::MAX - e.family.len(),
                e.parameters.abs_diff(parameters),
            )
        })?;
    let langs: Vec<Language> = entry
        .languages
        .iter()
        .filter_map(|l| Language::parse(l))
        .collect();
    Some((langs, format!("catalog:{}", entry.id)))
}

fn fallback_languages(arch: &str) -> (Vec<Language>, String) {
    let langs = FALLBACK
        .iter()
        .find(|(a, _)| *a == arch)
        .map(|(_, l)| l.to_vec())
        .unwrap_or_else(|| vec![Language::En]);
    (langs, "architecture table".to_string())
}

/// Describes a model file from its metadata (the header only; no weights are read).
pub fn describe(id: &str, path: &Path) -> Result<ModelProfile, hearth_engine::EngineError> {
    let file = ModelFile::open(path)?;
    let cfg = file.config()?;
    let arch = cfg.arch.name().to_string();
    let name = file.get_str("general.name").map(str::to_string);
    let basename = file.get_str("general.basename").unwrap_or("");
    let template = file.get_str("tokenizer.chat_template");
    let family = ModelFamily::detect(&arch, name.as_deref(), template);
    let parameters = file.parameter_count();
    let names = format!("{} {basename}", name.as_deref().unwrap_or(""));
    let (languages, languages_from) =
        catalog_languages(&names, parameters).unwrap_or_else(|| fallback_languages(&arch));
    Ok(ModelProfile {
        id: id.to_string(),
        name: name.unwrap_or_else(|| id.to_string()),
        path: path.to_path_buf(),
        arch,
        parameters,
        family,
        languages,
        languages_from,
        context_length: cfg.context_len as u32,
    })
}

/// The best of `models` for translating `source` into `target`; `default_id` breaks ties.
pub fn choose(
    models: &[ModelProfile],
    source: Language,
    target: Language,
    default_id: Option<&str>,
) -> Option<ModelChoice> {
    let score = |m: &ModelProfile| {
        let covered = [source, target]
            .iter()
            .filter(|l| m.languages.contains(l))
            .count();
        (
            covered,
            m.family != ModelFamily::Plain,
            m.parameters,
            default_id == Some(m.id.as_str()),
        )
    };
    let best = models.iter().max_by_key(|m| score(m))?;
    let supports_pair = best.languages.contains(&source) && best.languages.contains(&target);
    let others = models.len() - 1;
    let reason = if supports_pair {
        format!(
            "{} handles {} and {}{}",
            best.name,
            source.english_name(),
            target.english_name(),
            if others > 0 {
                format!(
                    " and is the largest such model of the {} installed",
                    models.len()
                )
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "No installed model is known to handle both {} and {}; {} is the closest",
            source.english_name(),
            target.english_name(),
            best.name
        )
    };
    Some(ModelChoice {
        model: best.clone(),
        supports_pair,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str, params: u64, family: ModelFamily, langs: &[Language]) -> ModelProfile {
        ModelProfile {
            id: id.into(),
            name: id.into(),
            path: PathBuf::from(id),
            arch: "x".into(),
            parameters: params,
            family,
            languages: langs.to_vec(),
            languages_from: "test".into(),
            context_length: 4096,
        }
    }

    #[test]
    fn catalog_families_match_gguf_names() {
        let (l, from) =
            catalog_languages("Qwen2.5 Coder 0.5B Instruct AWQ Qwen2.5-Coder", 494_000_000)
                .unwrap();
        assert_eq!(from, "catalog:qwen2.5-0.5b-instruct");
        assert!(l.contains(&Language::Zh) && l.contains(&Language::De));
        let (l, from) = catalog_languages("Smollm2 135M 8k smollm2", 134_000_000).unwrap();
        assert_eq!(from, "catalog:smollm2-135m-instruct");
        assert_eq!(l, vec![Language::En]);
        let (_, from) = catalog_languages("Gemma 3 270m gemma-3", 268_000_000).unwrap();
        assert_eq!(from, "catalog:gemma3-1b-it");
        assert!(catalog_languages("Mystery 7B", 7_000_000_000).is_none());
        assert_eq!(fallback_languages("phi3").0, vec![Language::En]);
        assert_eq!(fallback_languages("unknown").0, vec![Language::En]);
    }

    #[test]
    fn choice_prefers_pair_support_then_chat_then_size() {
        use Language::*;
        use ModelFamily::*;
        let small_multi = profile("qwen-small", 500, Qwen, &[En, Zh, Fr]);
        let big_english = profile("smol-big", 1700, SmolLm, &[En]);
        let base_multi = profile("gemma-base", 900, Plain, &[En, Zh, Fr]);
        let big_multi = profile("qwen-big", 1500, Qwen, &[En, Zh, Fr]);
        let all = vec![small_multi.clone(), big_english.clone(), base_multi.clone()];
        let c = choose(&all, En, Zh, None).unwrap();
        assert_eq!(c.model.id, "qwen-small");
        assert!(c.supports_pair);
        assert!(
            c.reason.contains("handles English and Simplified Chinese"),
            "{}",
            c.reason
        );
        let mut with_big = all.clone();
        with_big.push(big_multi);
        assert_eq!(
            choose(&with_big, Zh, Fr, None).unwrap().model.id,
            "qwen-big"
        );
        let c = choose(&[big_english.clone()], En, Zh, None).unwrap();
        assert!(!c.supports_pair);
        assert!(c.reason.starts_with("No installed model"), "{}", c.reason);
        // The default breaks a tie.
        let twin = profile("twin", 500, Qwen, &[En, Zh, Fr]);
        let pair = vec![small_multi, twin];
        assert_eq!(
            choose(&pair, En, Fr, Some("twin")).unwrap().model.id,
            "twin"
        );
        assert!(choose(&[], En, Fr, None).is_none());
    }
}
