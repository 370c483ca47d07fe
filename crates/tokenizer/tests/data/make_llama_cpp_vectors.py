"""Regenerates llama_cpp_vectors.json: the token ids llama.cpp gives for a set of texts on the
project's three test models, for the tokenizer's parity test (tests/tokenizer/llama_cpp.rs).

Needs llama-cpp-python==0.3.36 (it builds llama.cpp from source) and the models fetched by
scripts/fetch-test-models:

    python make_llama_cpp_vectors.py "$HEARTH_TEST_MODELS"

For each text, the ids are listed for (add_special, parse_special) = (no, no), (no, yes),
(yes, no), (yes, yes), as `llama_tokenize` gives them.
"""
import json
import os
import random
import sys

from llama_cpp import Llama

MODELS = [
    "smollm2-135m-instruct-q4_1.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "gemma-3-270m-q4_k_m.gguf",
]

texts = [
 "Hello world", " Hello world", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
 "The quick brown fox jumps over the lazy dog. It's 3:45 p.m., isn't it?",
 "  leading spaces, trailing spaces  \n\n\ttabs and newlines\r\n",
 "我想在苹果公司工作。北京是中国的首都，人口超过两千万。",
 "Emoji: 🦙🚀😶‍🌫️ ✅ 👩🏽‍💻 and flags 🇫🇷🇯🇵",
 "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{v:?}\");\n}\n",
 "def f(x):\n\treturn {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n",
 "Ünïcödé façade naïve café — “quotes” ‘single’ … €100 ½",
 "нещо на Български, Ελληνικά, العربية, हिन्दी, 한국어, 日本語のテキスト",
 "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
 "<start_of_turn>user\nWrite  code\n\n<end_of_turn>\n<start_of_turn>model\n",
 # No "</s>": where it is not a control token, hearth-tokenizer deliberately does not treat it
 # as end-of-generation, unlike llama.cpp (see special_tokens.rs); tested separately.
 "<bos><eos><s><unk><pad> <table><td>x</td></table>  \t\t\n\n\n   end",
 "<|endoftext|><|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
 "3333333 3.14159 1,000,000 0x1F 1e-9 ½ ¾ ① ⅷ",
 "\u00a0non\u2009breaking\u3000spaces\u200b zero width",
 "e\u0301 combining a\u0308 o\u0302\u0323",
 "a" * 300,
 " ".join(["word"] * 50),
 "\n" * 40 + "x" + " " * 40 + "y" + "\t" * 35,
]
rng = random.Random(1234)
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`\n\t éüßçñøåæ你好世界日本語한국어русскийΕλληνικά🙂🚀🦙…—’“”"
for i in range(60):
    n = rng.randint(1, 120)
    texts.append("".join(rng.choice(alphabet) for _ in range(n)))


def main():
    models_dir = sys.argv[1]
    out = {"texts": texts, "models": {}}
    for name in MODELS:
        llm = Llama(model_path=os.path.join(models_dir, name), vocab_only=True, verbose=False)
        rows = []
        for text in texts:
            row = []
            for add_special in (False, True):
                for parse_special in (False, True):
                    row.append(llm.tokenize(text.encode("utf-8"), add_bos=add_special,
                                            special=parse_special))
            rows.append(row)
        out["models"][name] = rows
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_cpp_vectors.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
