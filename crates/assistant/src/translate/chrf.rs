//! chrF: the character n-gram F-score used to measure translation quality (Popović, 2015).
//!
//! Definition used here (the one sacreBLEU reports as `chrF2` with word order 0): whitespace is
//! removed, character n-grams of orders 1 to [`CHAR_ORDER`] are counted in the hypothesis and the
//! reference, precision and recall are averaged over the orders for which both sides have
//! n-grams, and the F-score weighs recall [`BETA`] times as much as precision. Scores are 0-100.
//! A corpus score sums the n-gram statistics of every sentence before computing the F-score, so
//! it is not the mean of the sentence scores.

use std::collections::HashMap;

/// Longest character n-gram counted.
pub const CHAR_ORDER: usize = 6;
/// Recall weight.
pub const BETA: f64 = 2.0;

/// Matched and total n-gram counts per order, added up over any number of sentence pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChrfStats {
    /// Per order (index 0 is unigrams): n-grams in the hypothesis, in the reference, in both.
    orders: [[u64; 3]; CHAR_ORDER],
}

fn ngrams(chars: &[char], n: usize) -> HashMap<&[char], u64> {
    let mut m = HashMap::new();
    if chars.len() >= n {
        for w in chars.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

impl ChrfStats {
    /// Statistics of one hypothesis against its reference.
    pub fn sentence(hypothesis: &str, reference: &str) -> Self {
        let hyp: Vec<char> = hypothesis.chars().filter(|c| !c.is_whitespace()).collect();
        let refr: Vec<char> = reference.chars().filter(|c| !c.is_whitespace()).collect();
        let mut orders = [[0u64; 3]; CHAR_ORDER];
        for (i, o) in orders.iter_mut().enumerate() {
            let n = i + 1;
            let h = ngrams(&hyp, n);
            let r = ngrams(&refr, n);
            let matched: u64 = h
                .iter()
                .map(|(g, c)| (*c).min(r.get(g).copied().unwrap_or(0)))
                .sum();
            *o = [h.values().sum(), r.values().sum(), matched];
        }
        Self { orders }
    }

    /// Adds another pair's statistics (for a corpus score).
    pub fn add(&mut self, other: &ChrfStats) {
        for (a, b) in self.orders.iter_mut().zip(other.orders.iter()) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
    }

    /// The chrF score, 0-100. 0 when either side is empty.
    pub fn score(&self) -> f64 {
        let mut precision = 0.0;
        let mut recall = 0.0;
        let mut effective = 0usize;
        for [hyp, refr, matched] in self.orders {
            if hyp == 0 || refr == 0 {
                continue;
            }
            precision += matched as f64 / hyp as f64;
            recall += matched as f64 / refr as f64;
            effective += 1;
        }
        if effective == 0 {
            return 0.0;
        }
        let p = precision / effective as f64;
        let r = recall / effective as f64;
        let b2 = BETA * BETA;
        if p + r == 0.0 {
            return 0.0;
        }
        100.0 * (1.0 + b2) * p * r / (b2 * p + r)
    }
}

/// chrF of one hypothesis against one reference, 0-100.
pub fn chrf(hypothesis: &str, reference: &str) -> f64 {
    ChrfStats::sentence(hypothesis, reference).score()
}

/// chrF of a whole set of (hypothesis, reference) pairs, 0-100.
pub fn corpus_chrf<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let mut total = ChrfStats::default();
    for (h, r) in pairs {
        total.add(&ChrfStats::sentence(h, r));
    }
    total.score()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_scores_100_and_disjoint_text_0() {
        assert!((chrf("The cat sat on the mat.", "The cat sat on the mat.") - 100.0).abs() < 1e-9);
        assert_eq!(chrf("abc", "xyz"), 0.0);
        assert_eq!(chrf("", "something"), 0.0);
        assert_eq!(chrf("something", ""), 0.0);
    }

    #[test]
    fn whitespace_is_ignored() {
        assert!((chrf("the cat", "thecat") - 100.0).abs() < 1e-9);
        assert!((chrf("猫 坐 在 垫子 上", "猫坐在垫子上") - 100.0).abs() < 1e-9);
    }

    #[test]
    fn hand_computed_small_case() {
        // hyp "ab", ref "abc": unigrams P=2/2 R=2/3, bigrams P=1/1 R=1/2, no trigram in hyp.
        let p: f64 = (1.0 + 1.0) / 2.0;
        let r: f64 = (2.0 / 3.0 + 0.5) / 2.0;
        let expected = 100.0 * 5.0 * p * r / (4.0 * p + r);
        assert!(
            (chrf("ab", "abc") - expected).abs() < 1e-9,
            "{}",
            chrf("ab", "abc")
        );
    }

    #[test]
    fn recall_weighs_more_than_precision() {
        // Missing half the reference is worse than adding as much extra text.
        let reference = "abcdefgh";
        let short = chrf("abcd", reference);
        let long = chrf("abcdefghijklmnop", reference);
        assert!(long > short, "long {long} short {short}");
    }

    #[test]
    fn closer_translation_scores_higher() {
        let r = "Copy one or more files from SOURCE to DESTINATION.";
        let good = chrf(
            "Copy one or more files from the SOURCE to the DESTINATION.",
            r,
        );
        let bad = chrf("Move a folder to another place.", r);
        assert!(good > 70.0 && bad < 30.0, "good {good} bad {bad}");
    }

    #[test]
    fn corpus_score_pools_statistics() {
        let pairs = [("abcdefghij", "abcdefghij"), ("xya", "abd")];
        let mut s = ChrfStats::sentence(pairs[0].0, pairs[0].1);
        s.add(&ChrfStats::sentence(pairs[1].0, pairs[1].1));
        assert!((corpus_chrf(pairs) - s.score()).abs() < 1e-12);
        let mean = (chrf(pairs[0].0, pairs[0].1) + chrf(pairs[1].0, pairs[1].1)) / 2.0;
        assert!((corpus_chrf(pairs) - mean).abs() > 1e-6);
    }
}
