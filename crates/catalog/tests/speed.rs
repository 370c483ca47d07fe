//! Predicted decode speed (memory bandwidth × efficiency ÷ bytes read per token) against the
//! engine's measured speed on the three test models. One test in this binary, so nothing else
//! competes for the cores while it measures.

mod support;

use std::sync::atomic::AtomicBool;

use hearth_catalog::hardware::{measure_bandwidth, predict_decode, Hardware, ModelCost};
use hearth_engine::{GenerationParams, LoadedModel, Prompt, SamplingParams};

#[test]
fn predicted_decode_speed_is_close_to_measured() {
    let hw = Hardware::detect();
    let threads = 2.min(hw.logical_cores);
    let bw = measure_bandwidth(hw.logical_cores, hw.total_memory);
    eprintln!(
        "{} ({} logical cores, {:?}), {:.1} GiB total / {:.1} GiB available, copy bandwidth {:.1} GB/s",
        hw.cpu,
        hw.logical_cores,
        hw.features.names(),
        hw.total_memory as f64 / (1u64 << 30) as f64,
        hw.available_memory as f64 / (1u64 << 30) as f64,
        bw.bytes_per_second / 1e9
    );
    let mut results = Vec::new();
    for name in [
        "smollm2-135m-instruct-q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ] {
        let path = support::test_model(name);
        let cost = ModelCost::of_gguf(&path).unwrap();
        let mut m = LoadedModel::load(&path, threads).unwrap();
        let params = GenerationParams {
            max_tokens: 16,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            ..Default::default()
        };
        let prompt = Prompt::Raw("The history of the city of Paris began".into());
        // A short warm-up run, then the best of two measured ones (other work on the machine
        // only ever slows a run down).
        let warm = GenerationParams {
            max_tokens: 2,
            ..params.clone()
        };
        m.generate(&prompt, &warm, &AtomicBool::new(false), &mut |_| true)
            .unwrap();
        let mut measured: f64 = 0.0;
        let mut context = 0;
        for _ in 0..2 {
            m.reset_cache();
            let s = m
                .generate(&prompt, &params, &AtomicBool::new(false), &mut |_| true)
                .unwrap();
            measured = measured.max(s.decode_tok_s);
            context = (s.prompt_token_ids.len() + s.tokens.len()) as u64 / 2;
        }
        let predicted = predict_decode(&bw, &cost, context);
        eprintln!(
            "{name}: {:.0} MB read per token; predicted {predicted:.1} tok/s, measured {measured:.1} tok/s (ratio {:.2})",
            cost.bytes_read_per_token as f64 / 1e6,
            measured / predicted
        );
        assert!(measured > 0.0 && predicted > 0.0);
        // Never wildly pessimistic. (A busy machine makes decoding slower than predicted, so no
        // lower bound is asserted; the ratio is printed.)
        assert!(
            measured / predicted <= 3.0,
            "{name}: prediction {predicted:.1} tok/s is below a third of the measured {measured:.1} tok/s"
        );
        results.push((name, predicted, measured));
    }
    // The prediction orders the models as the measurements do: the one predicted fastest is
    // measured faster than the one predicted slowest.
    results.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (slow, fast) = (results.first().unwrap(), results.last().unwrap());
    assert!(
        fast.2 > slow.2,
        "predicted {} faster than {}, measured the other way: {results:?}",
        fast.0,
        slow.0
    );
}
