//! Hearth's per-tensor quantization recipe against files llama.cpp quantized: for every tensor of
//! the Q4_K_M test models, the type Hearth would choose is the type llama.cpp chose. (The Qwen
//! file's tensors are in text order, `blk.10` before `blk.2`, which moves llama.cpp's Q6_K layers;
//! the recipe is given each tensor's position in the file, as llama.cpp counts.)

mod support;

use candle_core::quantized::gguf_file::{Content, Value};
use hearth_catalog::convert::recipe::{choose, Category};
use hearth_catalog::gguf_out::ggml_type_name;
use hearth_catalog::Quant;

fn check(file: &str) -> usize {
    let path = support::test_model(file);
    let c = Content::read(&mut std::fs::File::open(&path).unwrap()).unwrap();
    let arch = match &c.metadata["general.architecture"] {
        Value::String(s) => s.clone(),
        _ => panic!(),
    };
    let n_layer = c.metadata[&format!("{arch}.block_count")].to_u32().unwrap() as usize;
    let tied = !c.tensor_infos.contains_key("output.weight");
    // llama.cpp counts tensors of a kind in file order; data offsets follow that order.
    let mut in_order: Vec<_> = c.tensor_infos.iter().collect();
    in_order.sort_by_key(|(_, info)| info.offset);
    let mut seen: std::collections::HashMap<Category, usize> = Default::default();
    let mut mismatches = Vec::new();
    for (name, info) in in_order {
        let kind = Category::of(name);
        let i = seen.entry(kind).or_insert(0);
        let ours = choose(Quant::Q4KM, name, info.shape.dims(), (*i, n_layer), tied).dtype;
        *i += 1;
        if ours != info.ggml_dtype {
            mismatches.push(format!(
                "{name} {:?}: llama.cpp {}, Hearth {}",
                info.shape.dims(),
                ggml_type_name(info.ggml_dtype),
                ggml_type_name(ours)
            ));
        }
    }
    mismatches.sort();
    assert!(
        mismatches.is_empty(),
        "{file}: {} of {} tensors differ:\n{}",
        mismatches.len(),
        c.tensor_infos.len(),
        mismatches.join("\n")
    );
    c.tensor_infos.len()
}

#[test]
fn q4_k_m_choices_match_llama_cpp_for_gemma3() {
    assert_eq!(check("gemma-3-270m-q4_k_m.gguf"), 236);
}

#[test]
fn q4_k_m_choices_match_llama_cpp_for_qwen2() {
    assert!(check("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") > 200);
}
