//! Choosing the next token from the logits. [`SamplingParams`] is a plain value: the same
//! parameters, seed and logits always give the same token.
//!
//! Order of operations: repeat penalty over the last `repeat_last_n` tokens, then greedy argmax
//! when `temperature` is 0; otherwise temperature, top-k, top-p (nucleus), min-p, and a draw from
//! what is left with a generator seeded from `seed`.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy decoding.
    pub temperature: f32,
    /// 0 means no top-k cut.
    pub top_k: usize,
    /// 1.0 means no nucleus cut.
    pub top_p: f32,
    /// 0.0 means no min-p cut.
    pub min_p: f32,
    /// 1.0 means no penalty.
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    /// None draws a seed from the operating system.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalty: the most likely token every time.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: Some(0),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidSetting(m.to_string()));
        if !self.temperature.is_finite() || self.temperature < 0.0 || self.temperature > 10.0 {
            return bad("temperature must be between 0 and 10");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p must be greater than 0 and at most 1");
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad("min-p must be at least 0 and below 1");
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad("the repeat penalty must be greater than 0");
        }
        Ok(())
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// The candidates of the last draw: kept so that a token costs no allocation.
    cand: Vec<(u32, f32)>,
    probs: Vec<f32>,
}

/// Candidates from most to least likely; equal logits by token id, so that the order (and with
/// it the draw) does not depend on how they were sorted.
fn likelier(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let rng = match params.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Ok(Self {
            params,
            rng,
            cand: Vec::new(),
            probs: Vec::new(),
        })
    }

    /// Picks the next token. `history` is every token so far (prompt and output).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(EngineError::Compute("the model returned no logits".into()));
        }
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
            let from = history.len().saturating_sub(p.repeat_last_n);
            let mut seen = std::collections::HashSet::new();
            for &t in &history[from..] {
                if seen.insert(t) {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = if *l > 0.0 {
                            *l / p.repeat_penalty
                        } else {
                            *l * p.repeat_penalty
                        };
                    }
                }
            }
        }
        if p.temperature == 0.0 {
            return Ok(argmax(logits));
        }
        let (cand, probs) = (&mut self.cand, &mut self.probs);
        cand.clear();
        cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, l)| (i as u32, *l / p.temperature))
                .filter(|(_, l)| l.is_finite()),
        );
        if cand.is_empty() {
            return Ok(argmax(logits));
        }
        // The top k picked out in linear time, then only they sorted: sorting the whole
        // vocabulary (49,152 to 262,144 logits) took longer than a small model's decoding step.
        if p.top_k > 0 && cand.len() > p.top_k {
            cand.select_nth_unstable_by(p.top_k - 1, likelier);
            cand.truncate(p.top_k);
        }
        // Without a top-k cut, min-p's floor (the likeliest probability times `min_p`) drops
        // most of the vocabulary; what falls under half of it is dropped before sorting (the
        // probabilities still sum over every candidate, as top-p's cut needs).
        let mut sum_all = None;
        if p.top_k == 0 && p.min_p > 0.0 {
            let max = cand.iter().fold(f32::NEG_INFINITY, |m, c| m.max(c.1));
            sum_all = Some(cand.iter().map(|c| (c.1 - max).exp()).sum::<f32>());
            let cut = max + (p.min_p / 2.0).ln();
            cand.retain(|c| c.1 >= cut);
        }
        cand.sort_unstable_by(likelier);
        let max = cand[0].1;
        probs.clear();
        probs.extend(cand.iter().map(|(_, l)| (l - max).exp()));
        let sum = sum_all.unwrap_or_else(|| probs.iter().sum());
        probs.iter_mut().for_each(|x| *x /= sum);
        Ok(draw(p, &mut self.rng, cand, probs))
    }
}

/// The last steps of [`Sampler::sample`]: `cand` from most to least likely with their
/// probabilities `probs` (not empty), cut by top-p, then min-p, then one draw.
fn draw(p: &SamplingParams, rng: &mut StdRng, cand: &[(u32, f32)], probs: &[f32]) -> u32 {
    let mut keep = probs.len();
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        for (i, pr) in probs.iter().enumerate() {
            acc += pr;
            if acc >= p.top_p {
                keep = i + 1;
                break;
            }
        }
    }
    if p.min_p > 0.0 {
        let floor = probs[0] * p.min_p;
        keep = keep.min(probs.iter().take_while(|pr| **pr >= floor).count().max(1));
    }
    let total: f32 = probs[..keep].iter().sum();
    let mut r = rng.random::<f32>() * total;
    for (c, pr) in cand.iter().zip(probs).take(keep) {
        r -= pr;
        if r <= 0.0 {
            return c.0;
        }
    }
    cand[keep - 1].0
}

/// The index of the largest logit, the first one where several are equal; 0 for an empty
/// list. With NaNs among the logits (a broken model) the result is still an index of the list,
/// not necessarily the largest number's.
///
/// Sixteen lanes, each keeping the first position of its own largest value, so that the
/// compiler can vectorize the loop (the vocabulary is 49,152 to 262,144 logits per token, and a
/// scalar loop took about 1.5% of a small model's decoding step); then the lanes' best, ties to
/// the lowest position, then the values past the last whole 16.
pub fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut best = 0usize;
    if logits.len() >= LANES {
        let mut val = [0f32; LANES];
        val.copy_from_slice(&logits[..LANES]);
        let mut at = [0u32; LANES];
        for (c, chunk) in chunks.enumerate().skip(1) {
            for j in 0..LANES {
                let better = chunk[j] > val[j];
                val[j] = if better { chunk[j] } else { val[j] };
                at[j] = if better { c as u32 } else { at[j] };
            }
        }
        best = at[0] as usize * LANES;
        for (j, c) in at.iter().enumerate().skip(1) {
            let i = *c as usize * LANES + j;
            if logits[i] > logits[best] || (logits[i] == logits[best] && i < best) {
                best = i;
            }
        }
    }
    let start = logits.len() - rest.len();
    for (i, l) in rest.iter().enumerate() {
        if *l > logits[best] {
            best = start + i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 0.5, 2.9]
    }

    /// The sampler as it was before it kept the top k by selection: everything sorted (the
    /// same cuts and draw after that).
    fn sample_by_sorting(p: &SamplingParams, rng: &mut StdRng, logits: &[f32]) -> u32 {
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u32, *l / p.temperature))
            .filter(|(_, l)| l.is_finite())
            .collect();
        cand.sort_unstable_by(likelier);
        if p.top_k > 0 && cand.len() > p.top_k {
            cand.truncate(p.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f32> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        draw(p, rng, &cand, &probs)
    }

    #[test]
    fn the_top_k_by_selection_draws_what_sorting_everything_drew() {
        let mut seed = 11u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        for (top_k, top_p, min_p) in [
            (40, 0.95, 0.05),
            (40, 1.0, 0.0),
            (1, 1.0, 0.0),
            (5, 0.5, 0.0),
            (1000, 0.9, 0.1),
            (0, 0.95, 0.05),
            (0, 1.0, 0.3),
            (0, 0.8, 0.0),
            (0, 1.0, 0.0),
        ] {
            for temperature in [0.3, 0.7, 1.5] {
                let params = SamplingParams {
                    temperature,
                    top_k,
                    top_p,
                    min_p,
                    repeat_penalty: 1.0,
                    repeat_last_n: 0,
                    seed: Some(5),
                };
                let mut sampler = Sampler::new(params.clone()).unwrap();
                let mut rng = StdRng::seed_from_u64(5);
                let mut drawn = std::collections::HashSet::new();
                for round in 0..60 {
                    // A peaked distribution over 3,000 logits with a few ties and an infinity.
                    let mut logits: Vec<f32> = (0..3000)
                        .map(|_| (next() % 4000) as f32 / 400.0 - 5.0)
                        .collect();
                    logits[(next() % 3000) as usize] = 12.0;
                    logits[(next() % 3000) as usize] = 11.5;
                    logits[7] = f32::NEG_INFINITY;
                    let want = sample_by_sorting(&params, &mut rng, &logits);
                    let got = sampler.sample(&mut logits.clone(), &[]).unwrap();
                    assert_eq!(got, want, "round {round}, {params:?}");
                    drawn.insert(got);
                }
                if top_k != 1 && temperature > 1.0 && top_p > 0.9 && min_p < 0.1 {
                    assert!(drawn.len() > 1, "a real draw: {params:?}");
                }
            }
        }
    }

    #[test]
    fn argmax_is_the_first_largest_for_any_length() {
        let reference = |l: &[f32]| {
            let mut best = 0;
            for (i, v) in l.iter().enumerate() {
                if *v > l[best] {
                    best = i;
                }
            }
            best as u32
        };
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Few distinct values: many ties, in every lane.
            (seed >> 24) as f32 / 16.0 - 8.0
        };
        for len in [0, 1, 5, 15, 16, 17, 31, 32, 33, 100, 1000, 49_152, 49_157] {
            for _ in 0..20 {
                let mut l: Vec<f32> = (0..len).map(|_| next()).collect();
                assert_eq!(argmax(&l), reference(&l), "{len} logits");
                if len > 0 {
                    // The largest alone, at the end (past the last whole 16) and at the start.
                    for at in [len - 1, 0] {
                        let keep = l[at];
                        l[at] = 100.0;
                        assert_eq!(argmax(&l), at as u32, "{len} logits, largest at {at}");
                        l[at] = keep;
                    }
                }
            }
        }
        let mut l = vec![f32::NEG_INFINITY; 40];
        assert_eq!(argmax(&l), 0);
        l[37] = -1e30;
        assert_eq!(argmax(&l), 37);
        l[3] = f32::NAN;
        assert!((argmax(&l) as usize) < l.len());
    }

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        assert_eq!(s.sample(&mut logits(), &[]).unwrap(), 1);
    }

    #[test]
    fn repeat_penalty_moves_greedy_choice() {
        let mut p = SamplingParams::greedy();
        p.repeat_penalty = 1.5;
        p.repeat_last_n = 8;
        let mut s = Sampler::new(p).unwrap();
        // Token 1 was just produced: 3.0 / 1.5 = 2.0 now loses to 2.9.
        assert_eq!(s.sample(&mut logits(), &[1]).unwrap(), 5);
    }

    #[test]
    fn same_seed_same_draws_and_seeds_differ() {
        let p = SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: Some(7),
        };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone()).unwrap();
            (0..64)
                .map(|_| s.sample(&mut logits(), &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&p), draw(&p));
        let other = SamplingParams {
            seed: Some(8),
            ..p.clone()
        };
        assert_ne!(draw(&p), draw(&other));
        // A hot distribution over 6 tokens visits several of them.
        let distinct: std::collections::HashSet<_> = draw(&p).into_iter().collect();
        assert!(distinct.len() >= 3, "{distinct:?}");
    }

    #[test]
    fn top_k_one_is_greedy_and_min_p_cuts_the_tail() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: Some(1),
        };
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits(), &[]).unwrap(), 1);
        }
        // min-p 0.5: only tokens with probability >= half of the top one (logits 3.0, 2.9, 2.5).
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: Some(3),
        };
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..200 {
            let t = s.sample(&mut logits(), &[]).unwrap();
            assert!([1, 2, 5].contains(&t), "{t}");
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let mut l = vec![10.0, 9.0, -10.0, -10.0];
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: Some(5),
        };
        let mut s = Sampler::new(p).unwrap();
        for _ in 0..50 {
            assert_eq!(s.sample(&mut l, &[]).unwrap(), 0);
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        for p in [
            SamplingParams {
                temperature: -1.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 0.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                min_p: 1.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                repeat_penalty: 0.0,
                ..SamplingParams::default()
            },
        ] {
            assert!(matches!(
                Sampler::new(p),
                Err(EngineError::InvalidSetting(_))
            ));
        }
    }
}
