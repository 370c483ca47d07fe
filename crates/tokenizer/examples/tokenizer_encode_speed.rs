//! Measures encoding and decoding speed on a large mixed-language text.
//!
//! `cargo run -p hearth-tokenizer --example tokenizer_encode_speed -- MODEL.gguf [KIB]`

use std::path::PathBuf;
use std::time::Instant;

use hearth_tokenizer::GgufTokenizer;

const SAMPLE: &str = "The quick brown fox jumps over the lazy dog. It's 3:45 p.m., isn't it?\n\
我想在苹果公司工作。北京是中国的首都，人口超过两千万。\n\
fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n}\n\
Ünïcödé façade naïve café — “quotes” … €100 ½ 🦙🚀\n\n";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: tokenizer_encode_speed MODEL.gguf [KIB]")?,
    );
    let kib: usize = args.next().map(|k| k.parse()).transpose()?.unwrap_or(1024);
    let tok = GgufTokenizer::load(&path)?;
    let mut text = String::new();
    while text.len() < kib * 1024 {
        text.push_str(SAMPLE);
    }
    let start = Instant::now();
    let ids = tok.encode(&text, false, false)?;
    let encode = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let back = tok.decode(&ids, false)?;
    let decode = start.elapsed().as_secs_f64();
    assert_eq!(back, text);
    println!(
        "{}: {} KiB -> {} tokens; encode {:.1} MiB/s, decode {:.1} MiB/s",
        path.display(),
        text.len() / 1024,
        ids.len(),
        text.len() as f64 / encode / (1 << 20) as f64,
        text.len() as f64 / decode / (1 << 20) as f64
    );
    Ok(())
}
