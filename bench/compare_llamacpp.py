#!/usr/bin/env python3
"""Compare Hearth's engine with llama.cpp on the same GGUF file, prompt and thread count.

For every model and thread count this reports:
  * speed: prefill and decode tokens per second of both engines, measured alternately
    (Hearth, llama.cpp, llama.cpp, Hearth, ...) over several repetitions, each one a fresh
    process so the engines never share caches or thread pools; the table gives the medians
    and the ratio Hearth / llama.cpp (above 1 means Hearth is faster);
  * parity: for 5 fixed plain-text prompts, whether both engines tokenize the prompt to the
    same ids, and whether greedy decoding of 32 tokens agrees token for token, with the first
    position where it does not.

Results are printed as Markdown and written to a .md and a .json file.

Hearth is driven through its `hearth` binary:
  hearth bench --model PATH --prompt-tokens N --gen-tokens M --threads T --json
  hearth generate --model PATH --prompt TEXT --raw --greedy --max-tokens N --threads T --json
llama.cpp is driven through llama-cpp-python in the virtual environment that
bench/setup-reference builds; this file re-runs itself under that environment's python
(`--_worker`, not for direct use) for each llama.cpp measurement.

The orchestrating side needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("HEARTH_CACHE", Path.home() / ".cache" / "hearth"))
TEST_MODELS = Path(os.environ.get("HEARTH_TEST_MODELS", CACHE / "test-models"))
DEFAULT_MODELS = [
    TEST_MODELS / "smollm2-135m-instruct-q4_1.gguf",
    TEST_MODELS / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
]
REFERENCE_VERSION = "0.3.36"

# The prompts of the parity check. Plain text (no chat template), chosen to exercise an
# English fact, code, a story, non-Latin script and a translation-style continuation.
PARITY_PROMPTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Once upon a time, in a small village by the sea, there lived",
    "中国的首都是北京。日本的首都是",
    "Translate to French: The weather is nice today.\nFrench:",
]
PARITY_TOKENS = 32

# Text whose tokens fill the prefill of the speed measurement (cut or repeated to N tokens).
FILL_TEXT = (
    "The history of the lighthouse is a history of people trying to make the sea a little less "
    "dangerous. Long before electric lamps, fires were kept burning on hills and towers near "
    "harbours so that sailors could find their way home at night. The keepers who tended them "
    "lived lonely lives, trimming wicks, polishing lenses and writing the weather into their "
    "logbooks every few hours. In the nineteenth century the Fresnel lens changed everything: "
    "its rings of glass prisms gathered the light of a single flame into a beam that could be "
    "seen twenty miles away. Each lighthouse was given its own pattern of flashes, so that a "
    "navigator who counted the seconds between them could tell which coast lay ahead. Today "
    "most lights are automatic, watched over by sensors and radio links instead of keepers, yet "
    "many towns still care for their old towers, paint them every few years and open them to "
    "visitors who climb the narrow stairs to look out over the water. "
    "def merge_sorted(left, right):\n    result = []\n    i = j = 0\n"
    "    while i < len(left) and j < len(right):\n        if left[i] <= right[j]:\n"
    "            result.append(left[i]); i += 1\n        else:\n"
    "            result.append(right[j]); j += 1\n    return result + left[i:] + right[j:]\n"
)


# ---------------------------------------------------------------------------------------------
# llama.cpp side (runs under the reference virtual environment's python)
# ---------------------------------------------------------------------------------------------


def _ref_open(model: str, threads: int, n_ctx: int, flash_attn: str):
    import llama_cpp  # only present in the reference environment

    kwargs = dict(
        model_path=model,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        verbose=False,
    )
    return llama_cpp.Llama(**kwargs, flash_attn=(flash_attn == "on"))


def _ref_argmax_fn(llm):
    import ctypes

    import llama_cpp
    import numpy as np

    n_vocab = llm.n_vocab()
    ctx = llm._ctx.ctx

    def argmax() -> int:
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
        return int(logits.argmax())

    return argmax


def _ref_describe(llm) -> dict:
    import llama_cpp

    desc = llm._model.desc()
    file_type = llm.metadata.get("general.file_type")
    return {
        "engine": "llama.cpp",
        "engine_version": f"llama-cpp-python {llama_cpp.__version__}",
        "model_desc": desc,
        "arch": llm.metadata.get("general.architecture"),
        "file_type": int(file_type) if file_type is not None else None,
        "quant": desc.split(" ", 2)[-1] if desc.count(" ") >= 2 else desc,
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(llm._model.vocab)),
    }


def _fill_tokens(llm, n: int) -> list[int]:
    base = llm.tokenize(FILL_TEXT.encode("utf-8"), add_bos=True, special=False)
    body = llm.tokenize(FILL_TEXT.encode("utf-8"), add_bos=False, special=False)
    tokens = list(base)
    while len(tokens) < n:
        tokens.extend(body)
    return tokens[:n]


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def ref_worker_bench(spec: dict) -> dict:
    n, m, threads = spec["prompt_tokens"], spec["gen_tokens"], spec["threads"]
    t0 = time.perf_counter()
    llm = _ref_open(spec["model"], threads, n + m + 16, spec["flash_attn"])
    load_ms = (time.perf_counter() - t0) * 1000.0
    argmax = _ref_argmax_fn(llm)
    prompt = _fill_tokens(llm, n)

    if spec.get("warmup", True):
        # One untimed pass, as llama-bench does: faults the weights in and starts the threads.
        llm.reset()
        llm.eval(prompt)
        llm.eval([argmax()])
        llm.eval([argmax()])

    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    tok = argmax()
    t_first = time.perf_counter()
    for _ in range(m):
        llm.eval([tok])
        tok = argmax()
    t2 = time.perf_counter()

    out = _ref_describe(llm)
    out.update(
        model=spec["model"],
        threads=threads,
        prompt_tokens=n,
        gen_tokens=m,
        prefill_tok_s=n / (t1 - t0),
        decode_tok_s=m / (t2 - t_first),
        ttft_ms=(t_first - t0) * 1000.0,
        load_ms=load_ms,
        peak_rss_mb=_peak_rss_mb(),
    )
    llm.close()
    return out


def ref_worker_parity(spec: dict) -> dict:
    import llama_cpp

    threads, max_tokens = spec["threads"], spec["max_tokens"]
    llm = _ref_open(spec["model"], threads, 512, spec["flash_attn"])
    argmax = _ref_argmax_fn(llm)
    vocab = llm._model.vocab
    results = []
    for prompt in spec["prompts"]:
        # add_bos=True is llama.cpp's add_special: BOS (and EOS) only where the model's metadata
        # asks for them. special=False: text that looks like a special token stays text.
        ptoks = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        llm.reset()
        llm.eval(ptoks)
        gen: list[int] = []
        stopped = False
        while len(gen) < max_tokens:
            tok = argmax()
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                stopped = True
                break
            gen.append(tok)
            if len(gen) < max_tokens:
                llm.eval([tok])
        text = llm.detokenize(gen, prev_tokens=ptoks).decode("utf-8", errors="replace")
        results.append({"prompt": prompt, "prompt_tokens": ptoks, "tokens": gen, "text": text, "stopped_on_eog": stopped})
    out = _ref_describe(llm)
    out.update(model=spec["model"], threads=threads, results=results)
    llm.close()
    return out


def ref_worker_margins(spec: dict) -> dict:
    """At each point where the engines part, llama.cpp's logits for both engines' choices."""
    import ctypes

    import llama_cpp
    import numpy as np

    llm = _ref_open(spec["model"], spec["threads"], 512, spec["flash_attn"])
    n_vocab = llm.n_vocab()
    out = []
    for case in spec["cases"]:
        llm.reset()
        llm.eval(case["context"])
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)).copy()
        ours, ref = case["ours"], case["ref"]
        out.append({
            "ref_logit_of_ref_token": float(logits[ref]) if 0 <= ref < n_vocab else None,
            "ref_logit_of_our_token": float(logits[ours]) if 0 <= ours < n_vocab else None,
            "rank_of_our_token": int((logits > logits[ours]).sum()) if 0 <= ours < n_vocab else None,
        })
    llm.close()
    return {"margins": out}


def worker_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    kind = spec["kind"]
    if kind == "bench":
        result = ref_worker_bench(spec)
    elif kind == "parity":
        result = ref_worker_parity(spec)
    elif kind == "margins":
        result = ref_worker_margins(spec)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# Orchestration (standard library only)
# ---------------------------------------------------------------------------------------------


class RunError(Exception):
    """A measurement subprocess failed or printed no JSON object."""


def _last_json_object(stdout: str) -> dict:
    text = stdout.strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    raise RunError("no JSON object on stdout")


def run_json(cmd: list[str], timeout: float) -> dict:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
    except OSError as e:
        raise RunError(f"could not start {cmd[0]}: {e}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise RunError(f"exit status {proc.returncode}: {' '.join(cmd)}\n{tail}")
    try:
        return _last_json_object(proc.stdout)
    except RunError as e:
        raise RunError(f"{e}: {' '.join(cmd)}\n{proc.stdout[-800:]}")


class Reference:
    def __init__(self, python: str, flash_attn: str, warmup: bool, timeout: float):
        self.python, self.flash_attn, self.warmup, self.timeout = python, flash_attn, warmup, timeout

    def _run(self, spec: dict) -> dict:
        spec = dict(spec, flash_attn=self.flash_attn)
        return run_json([self.python, str(Path(__file__).resolve()), "--_worker", json.dumps(spec)], self.timeout)

    def bench(self, model: str, n: int, m: int, threads: int) -> dict:
        return self._run({"kind": "bench", "model": model, "prompt_tokens": n, "gen_tokens": m, "threads": threads, "warmup": self.warmup})

    def parity(self, model: str, threads: int, prompts: list[str], max_tokens: int) -> dict:
        return self._run({"kind": "parity", "model": model, "threads": threads, "prompts": prompts, "max_tokens": max_tokens})

    def margins(self, model: str, threads: int, cases: list[dict]) -> list[dict]:
        return self._run({"kind": "margins", "model": model, "threads": threads, "cases": cases})["margins"]

    def version(self) -> str:
        proc = subprocess.run(
            [self.python, "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RunError(
                f"the reference python {self.python} cannot import llama_cpp; run bench/setup-reference\n"
                + proc.stderr.strip()[-800:]
            )
        return proc.stdout.strip()


class Hearth:
    def __init__(self, binary: str, timeout: float):
        self.binary, self.timeout = binary, timeout

    def bench(self, model: str, n: int, m: int, threads: int) -> dict:
        cmd = [self.binary, "bench", "--model", model, "--prompt-tokens", str(n), "--gen-tokens", str(m),
               "--threads", str(threads), "--json"]
        out = run_json(cmd, self.timeout)
        missing = [k for k in ("prefill_tok_s", "decode_tok_s") if not isinstance(out.get(k), (int, float))]
        if missing:
            raise RunError(f"`hearth bench` printed no {', '.join(missing)}: {json.dumps(out)[:500]}")
        out["engine"] = "hearth"
        return out

    def bandwidth(self, threads: int) -> float:
        """Bytes per second this machine reads with `threads` threads (`hearth bandwidth`)."""
        out = run_json([self.binary, "bandwidth", "--threads", str(threads), "--json"], self.timeout)
        bw = out.get("read_bytes_per_second")
        if not isinstance(bw, (int, float)) or bw <= 0:
            raise RunError(f"`hearth bandwidth` printed no read_bytes_per_second: {json.dumps(out)[:300]}")
        return float(bw)

    def generate(self, model: str, prompt: str, max_tokens: int, threads: int) -> dict:
        cmd = [self.binary, "generate", "--model", model, "--prompt", prompt, "--raw", "--greedy",
               "--max-tokens", str(max_tokens), "--threads", str(threads), "--json"]
        out = run_json(cmd, self.timeout)
        for k in ("prompt_tokens", "tokens"):
            if not isinstance(out.get(k), list):
                raise RunError(f"`hearth generate` printed no {k} list: {json.dumps(out, ensure_ascii=False)[:500]}")
        return out

    def parity(self, model: str, threads: int, prompts: list[str], max_tokens: int) -> dict:
        results = []
        for prompt in prompts:
            out = self.generate(model, prompt, max_tokens, threads)
            results.append({"prompt": prompt, "prompt_tokens": out["prompt_tokens"], "tokens": out["tokens"],
                            "text": out.get("text", "")})
        return {"engine": "hearth", "model": model, "threads": threads, "results": results}

    def version(self) -> str:
        try:
            proc = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RunError(f"cannot run {self.binary}: {e}")
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "unknown"


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first position where the sequences differ (a length difference counts), or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_parity(ours: dict, ref: dict) -> dict:
    rows = []
    for o, r in zip(ours["results"], ref["results"]):
        rows.append({
            "prompt": r["prompt"],
            "prompt_tokens_equal": o["prompt_tokens"] == r["prompt_tokens"],
            "prompt_first_diff": first_difference(o["prompt_tokens"], r["prompt_tokens"]),
            "identical": o["tokens"] == r["tokens"],
            "first_diff": first_difference(o["tokens"], r["tokens"]),
            "ours_len": len(o["tokens"]),
            "ref_len": len(r["tokens"]),
            "ours_prompt_tokens": o["prompt_tokens"],
            "ref_prompt_tokens": r["prompt_tokens"],
            "ours_tokens": o["tokens"],
            "ref_tokens": r["tokens"],
            "ours_text": o.get("text", ""),
            "ref_text": r["text"],
        })
    return {
        "prompts": len(rows),
        "tokenization_equal": sum(r["prompt_tokens_equal"] for r in rows),
        "identical": sum(r["identical"] for r in rows),
        "rows": rows,
    }


def add_margins(ref: Reference, model: str, threads: int, parity: dict) -> None:
    """For each generation where both engines saw the same prompt and chose different tokens at
    `first_diff`, records how far apart llama.cpp's logits for the two choices were: a gap of a
    few hundredths is a near-tie that summation order can flip; a large gap points at a bug."""
    cases, rows = [], []
    for r in parity["rows"]:
        d = r["first_diff"]
        if r["prompt_tokens_equal"] and d is not None and d < min(r["ours_len"], r["ref_len"]):
            cases.append({"context": r["ref_prompt_tokens"] + r["ref_tokens"][:d],
                          "ours": r["ours_tokens"][d], "ref": r["ref_tokens"][d]})
            rows.append(r)
    if not cases:
        return
    for r, m in zip(rows, ref.margins(model, threads, cases)):
        r.update(m)
        a, b = m["ref_logit_of_ref_token"], m["ref_logit_of_our_token"]
        r["ref_logit_gap"] = (a - b) if a is not None and b is not None else None


class BusyCores:
    """Processes that spin on the CPU while measurements run (contention test)."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def _cpu_seconds_busy() -> float | None:
    """CPU-seconds all processes have run since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return (sum(vals[:8]) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        return None


def _children_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class OtherLoad:
    """Measures how many CPUs' worth of work processes other than ours ran during a block.

    Our own share is this process plus the children it waited for (the measurement process);
    everything else /proc/stat counts is someone else's. `cpus` is None where /proc/stat is
    unreadable.
    """

    def __enter__(self):
        self.busy0, self.child0, self.wall0 = _cpu_seconds_busy(), _children_cpu_seconds(), time.perf_counter()
        self.self0 = time.process_time()
        return self

    def __exit__(self, *exc):
        busy1, wall = _cpu_seconds_busy(), time.perf_counter() - self.wall0
        self.ours = (_children_cpu_seconds() - self.child0) + (time.process_time() - self.self0)
        if busy1 is None or self.busy0 is None or wall <= 0:
            self.cpus = None
        else:
            self.cpus = max(0.0, (busy1 - self.busy0 - self.ours) / wall)
        return False


def busy_cpus(window: float = 0.5) -> float | None:
    """CPUs' worth of other work during a short pause (which also separates runs)."""
    with OtherLoad() as load:
        time.sleep(window)
    return load.cpus


def median_of(samples: list[dict], key: str) -> float | None:
    vals = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def measure_speed(hearth: Hearth | None, ref: Reference, model: str, n: int, m: int, threads: int,
                  reps: int, log, retries: int = 2, max_other: float = 0.25, busy_cores: int = 0) -> dict:
    """Runs both engines' benchmarks alternately; a run during which other processes used more
    than `max_other` CPUs (beyond the deliberate `busy_cores`) is measured again, up to
    `retries` times, and kept flagged `contended` if it never ran alone."""
    ours_samples, ref_samples, errors = [], [], []
    for rep in range(reps):
        order = ["hearth", "llama.cpp"] if rep % 2 == 0 else ["llama.cpp", "hearth"]
        for engine in order:
            if engine == "hearth" and hearth is None:
                continue
            for attempt in range(retries + 1):
                bw = None
                if engine == "hearth":
                    # The bound moves with what the rest of the host does to the memory bus:
                    # measure it next to each run instead of once for the whole table.
                    try:
                        bw = hearth.bandwidth(threads)
                    except RunError as e:
                        log(f"    read bandwidth: {e}")
                before = busy_cpus()
                try:
                    with OtherLoad() as during:
                        s = (hearth if engine == "hearth" else ref).bench(model, n, m, threads)
                except RunError as e:
                    errors.append(f"{engine}: {e}")
                    log(f"    rep {rep + 1}/{reps} {engine:9s} FAILED: {str(e).splitlines()[0]}")
                    if engine == "llama.cpp" and "exit status -4" in str(e):
                        log("    (signal 4 is an illegal instruction: the reference was built for "
                            "instructions this CPU does not run, e.g. AMX on a virtual machine that "
                            "lists it; see bench/README.md for a build without them)")
                    break
                s["other_cpus_before"], s["other_cpus_during"] = before, during.cpus
                if bw:
                    s["read_bytes_per_second"] = bw
                contended = during.cpus is not None and during.cpus > max_other + busy_cores
                log(f"    rep {rep + 1}/{reps} {engine:9s} prefill {s['prefill_tok_s']:8.1f} tok/s  "
                    f"decode {s['decode_tok_s']:7.1f} tok/s  (other work: {_f(during.cpus, 2)} CPUs)"
                    + ("  contended, measuring again" if contended and attempt < retries else ""))
                if not contended or attempt == retries:
                    s["contended"] = contended
                    (ours_samples if engine == "hearth" else ref_samples).append(s)
                    break
                time.sleep(2.0)
    out = {"hearth_samples": ours_samples, "ref_samples": ref_samples, "errors": errors}
    for side, samples in (("hearth", ours_samples), ("ref", ref_samples)):
        for key in ("prefill_tok_s", "decode_tok_s", "ttft_ms", "load_ms", "peak_rss_mb"):
            out[f"{side}_{key}"] = median_of(samples, key)
    out["decode_bytes_per_token"] = median_of(ours_samples, "decode_bytes_per_token")
    out["decode_cache_bytes_per_token"] = median_of(ours_samples, "decode_cache_bytes_per_token")
    # Read bandwidth measured just before each of Hearth's runs, and each run's decode speed as
    # a fraction of the bound that bandwidth gives.
    out["read_bytes_per_second"] = median_of(ours_samples, "read_bytes_per_second")
    fractions = [s["decode_tok_s"] * bytes_read_per_token(s) / s["read_bytes_per_second"]
                 for s in ours_samples
                 if all(isinstance(s.get(k), (int, float)) and s.get(k)
                        for k in ("decode_tok_s", "decode_bytes_per_token", "read_bytes_per_second"))]
    out["hearth_bound_fraction"] = statistics.median(fractions) if fractions else None
    for key in ("prefill_tok_s", "decode_tok_s"):
        o, r = out[f"hearth_{key}"], out[f"ref_{key}"]
        out[f"ratio_{key}"] = (o / r) if (o is not None and r) else None
    return out


# ------------------------------------------------------------------ rendering


def _f(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def _gap(row: dict) -> str:
    gap = row.get("ref_logit_gap")
    if gap is None:
        return "—"
    return f"{gap:.3f} (hearth's token ranked {row['rank_of_our_token'] + 1})"


def _short(text: str, width: int = 60) -> str:
    text = text.replace("\n", "⏎").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def bytes_read_per_token(s: dict) -> float:
    """What a decoded token reads from memory: every weight, and the key/value cache rows it sees
    (`decode_cache_bytes_per_token`, the mean over the decoded tokens; absent from older
    binaries' output, when only the weights count)."""
    return (s.get("decode_bytes_per_token") or 0) + (s.get("decode_cache_bytes_per_token") or 0)


def bound_rows(report: dict) -> list[str]:
    """Decode speed against the memory bound: read bandwidth ÷ bytes read per token (weights and
    the cache rows a token sees)."""
    bandwidth = report["meta"].get("bandwidth") or {}
    out = []
    for r in report["rows"]:
        s = r["speed"]
        # The bandwidth measured next to this row's runs when there is one, else the table's.
        bw = s.get("read_bytes_per_second") or bandwidth.get(str(r["threads"]))
        per = bytes_read_per_token(s) if s.get("decode_bytes_per_token") else None
        if not bw or not per:
            continue
        bound = bw / per
        pct = lambda v: "—" if v is None else f"{100 * v / bound:.0f}%"
        ours = s.get("hearth_bound_fraction")
        ours = f"{100 * ours:.0f}%" if ours is not None else pct(s.get("hearth_decode_tok_s"))
        out.append(f"| {r['model_name']} | {r['quant']} | {r['threads']} | {bw / 1e9:.1f} | {per / 1e6:.1f} | "
                   f"{bound:.1f} | {_f(s.get('hearth_decode_tok_s'))} ({ours}) | "
                   f"{_f(s.get('ref_decode_tok_s'))} ({pct(s.get('ref_decode_tok_s'))}) |")
    if not out:
        return []
    return ["", "Decoding against the memory bound (every weight, and the key/value cache rows a token sees, are "
            "read once per token: bandwidth ÷ bytes read per token; the bandwidth is `hearth bandwidth`, a multi-threaded read of a buffer far larger than "
            "the caches, measured just before each of Hearth's runs: the median is shown, and Hearth's share "
            "of the bound is the median over its runs of each run against the bandwidth measured next to it):",
            "",
            "| model | quant | threads | read GB/s | MB read per token | bound tok/s | hearth decode (of bound) | "
            "llama.cpp decode (of bound) |", "|---|---|---:|---:|---:|---:|---:|---:|"] + out


def render_markdown(report: dict) -> str:
    meta = report["meta"]
    ref_only = meta["reference_only"]
    lines = [
        "# Hearth vs llama.cpp",
        "",
        f"- date: {meta['date']}",
        f"- commit: {meta['commit']}",
        f"- machine: {meta['cpu']} ({meta['cpus']} logical CPUs; {meta['cpu_flags']}), {meta['os']}",
        f"- llama.cpp: llama-cpp-python {meta['reference_version']} (flash attention: {meta['flash_attn']})",
        f"- hearth: {meta['hearth'] if not ref_only else 'not run (--reference-only)'}",
        f"- speed: prefill {meta['prompt_tokens']} tokens, decode {meta['gen_tokens']} tokens, "
        f"median of {meta['reps']} alternated runs, each a fresh process"
        + (f"; {meta['busy_cores']} busy core(s) of background load" if meta["busy_cores"] else ""),
        f"- parity: {len(meta['prompts'])} plain prompts, greedy, {meta['parity_tokens']} tokens",
    ]
    samples = [s for r in report["rows"] for s in r["speed"].get("hearth_samples", []) + r["speed"].get("ref_samples", [])]
    loads = [s["other_cpus_during"] for s in samples if s.get("other_cpus_during") is not None]
    if loads:
        contended = sum(1 for s in samples if s.get("contended"))
        lines.append(f"- other processes' CPU use during the speed runs: median {statistics.median(loads):.2f}, "
                     f"max {max(loads):.2f} CPUs; " + (f"{contended} of {len(samples)} runs never ran alone "
                     "(speed figures are not reliable)" if contended else "every run ran on an otherwise idle machine"))
    lines.append("")
    rows = report["rows"]
    if ref_only:
        lines += [
            "| model | quant | threads | llama.cpp prefill tok/s | llama.cpp decode tok/s | TTFT ms | load ms | peak RSS MB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            s = r["speed"]
            lines.append(f"| {r['model_name']} | {r['quant']} | {r['threads']} | {_f(s['ref_prefill_tok_s'])} | "
                         f"{_f(s['ref_decode_tok_s'])} | {_f(s['ref_ttft_ms'], 0)} | {_f(s['ref_load_ms'], 0)} | "
                         f"{_f(s['ref_peak_rss_mb'], 0)} |")
    else:
        lines += [
            "| model | quant | threads | prefill tok/s hearth | prefill tok/s llama.cpp | prefill ratio | "
            "decode tok/s hearth | decode tok/s llama.cpp | decode ratio | prompt tokens equal | "
            "greedy identical | first difference (per prompt) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            s, p = r["speed"], r.get("parity")
            if p:
                diffs = ", ".join("=" if x["identical"] else str(x["first_diff"]) for x in p["rows"])
                tok_eq = f"{p['tokenization_equal']}/{p['prompts']}"
                ident = f"{p['identical']}/{p['prompts']}"
            elif r.get("parity_skipped"):
                diffs, tok_eq, ident = "not run", "—", "—"
            else:
                diffs, tok_eq, ident = "error", "—", "—"
            lines.append(
                f"| {r['model_name']} | {r['quant']} | {r['threads']} | {_f(s['hearth_prefill_tok_s'])} | "
                f"{_f(s['ref_prefill_tok_s'])} | {_f(s['ratio_prefill_tok_s'], 2)} | {_f(s['hearth_decode_tok_s'])} | "
                f"{_f(s['ref_decode_tok_s'])} | {_f(s['ratio_decode_tok_s'], 2)} | {tok_eq} | {ident} | {diffs} |")
        lines += bound_rows(report)
        lines += [
            "",
            "Ratios are Hearth ÷ llama.cpp (above 1: Hearth is faster). First difference: the index of the first "
            "generated token where the engines disagree (`=`: all identical). The logit gap below is llama.cpp's "
            "logit for its own token minus its logit for Hearth's token at that position: a few hundredths is a "
            "near-tie, a large gap a real divergence.",
            "",
            "| model | quant | threads | TTFT ms hearth | TTFT ms llama.cpp | load ms hearth | load ms llama.cpp | "
            "peak RSS MB hearth | peak RSS MB llama.cpp |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            s = r["speed"]
            lines.append(f"| {r['model_name']} | {r['quant']} | {r['threads']} | {_f(s['hearth_ttft_ms'], 0)} | "
                         f"{_f(s['ref_ttft_ms'], 0)} | {_f(s['hearth_load_ms'], 0)} | {_f(s['ref_load_ms'], 0)} | "
                         f"{_f(s['hearth_peak_rss_mb'], 0)} | {_f(s['ref_peak_rss_mb'], 0)} |")
        lines.append("")
        lines.append("(llama.cpp's peak RSS includes its Python interpreter and the binding, about 40 MB.)")

    lines += ["", "## Greedy outputs", ""]
    if ref_only:
        lines += ["| model | threads | prompt | prompt tokens | generated | llama.cpp text |", "|---|---:|---|---:|---:|---|"]
        for r in rows:
            for x in (r.get("ref_parity") or {}).get("results", []):
                lines.append(f"| {r['model_name']} | {r['threads']} | {_short(x['prompt'], 30)} | {len(x['prompt_tokens'])} | "
                             f"{len(x['tokens'])} | {_short(x['text'])} |")
    else:
        lines += ["| model | threads | prompt | prompt tokens equal | generated (hearth / llama.cpp) | first difference | "
                  "llama.cpp logit gap there | hearth text | llama.cpp text |", "|---|---:|---|---|---:|---:|---:|---|---|"]
        for r in rows:
            for x in (r.get("parity") or {}).get("rows", []):
                lines.append(
                    f"| {r['model_name']} | {r['threads']} | {_short(x['prompt'], 30)} | "
                    f"{'yes' if x['prompt_tokens_equal'] else 'no (at ' + str(x['prompt_first_diff']) + ')'} | "
                    f"{x['ours_len']} / {x['ref_len']} | {'=' if x['identical'] else x['first_diff']} | "
                    f"{_gap(x)} | {_short(x['ours_text'], 40)} | {_short(x['ref_text'], 40)} |")
    errors = [e for r in rows for e in r.get("errors", [])]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {_short(e, 300)}" for e in errors]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main


def machine_info() -> dict:
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [x for x in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni") if x in have]
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "cpu_flags": " ".join(flags) or "none of avx2/fma/avx512",
            "os": f"{platform.system()} {platform.release()}"}


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Compare Hearth with llama.cpp on the same GGUF files and threads.")
    ap.add_argument("--model", action="append", default=None,
                    help="GGUF file (repeatable); default: the SmolLM2 and Qwen2.5 test models")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="prefill length (default 128)")
    ap.add_argument("--gen-tokens", type=int, default=64, help="decoded tokens (default 64)")
    ap.add_argument("--reps", type=int, default=5, help="alternated repetitions per engine (default 5)")
    ap.add_argument("--hearth", default=str(REPO / "target" / "release" / "hearth"), help="the hearth binary")
    ap.add_argument("--reference-python", default=str(CACHE / "llamacpp-venv" / "bin" / "python"),
                    help="python of the venv made by bench/setup-reference")
    ap.add_argument("--reference-only", action="store_true", help="measure llama.cpp only (no hearth binary needed)")
    ap.add_argument("--no-parity", action="store_true", help="skip the greedy parity check")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    ap.add_argument("--flash-attn", choices=["off", "on"], default="off",
                    help="llama.cpp flash attention (default off, the binding's default)")
    ap.add_argument("--no-warmup", action="store_true", help="no untimed warm-up pass in llama.cpp runs")
    ap.add_argument("--busy-cores", type=int, default=0,
                    help="spin this many background processes during speed runs (contention test)")
    ap.add_argument("--retries", type=int, default=2,
                    help="measure a run again (up to this many times) when other processes were busy during it")
    ap.add_argument("--max-other-load", type=float, default=0.25,
                    help="CPUs of other work during a run above which it counts as contended (default 0.25)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per measurement process")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "compare-llamacpp"),
                    help="output path without extension: writes OUT.md and OUT.json")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    models = [str(Path(m).expanduser()) for m in (args.model or DEFAULT_MODELS)]
    missing = [m for m in models if not Path(m).is_file()]
    if missing:
        log("model file(s) not found: " + ", ".join(missing))
        if not args.model:
            log("run scripts/fetch-test-models to fetch the test models")
        return 2
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        log(f"--threads wants comma-separated integers, got {args.threads!r}")
        return 2
    if not threads or min(threads) < 1 or args.reps < 1 or args.prompt_tokens < 1 or args.gen_tokens < 1:
        log("threads, reps, prompt and gen tokens must be positive")
        return 2

    ref = Reference(args.reference_python, args.flash_attn, not args.no_warmup, args.timeout)
    try:
        ref_version = ref.version()
    except (RunError, OSError) as e:
        log(str(e))
        log("build the reference with bench/setup-reference")
        return 2
    if ref_version != REFERENCE_VERSION:
        log(f"warning: reference is llama-cpp-python {ref_version}, expected {REFERENCE_VERSION}")

    hearth = None
    hearth_desc = None
    if not args.reference_only:
        if not (os.path.isfile(args.hearth) and os.access(args.hearth, os.X_OK)):
            log(f"hearth binary not found at {args.hearth}: build it (cargo build --release -p hearth-cli) "
                "or pass --hearth PATH, or use --reference-only")
            return 2
        hearth = Hearth(args.hearth, args.timeout)
        try:
            hearth_desc = f"{args.hearth} ({hearth.version()})"
        except RunError as e:
            log(str(e))
            return 2

    report = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(),
            **machine_info(),
            "reference_version": ref_version,
            "flash_attn": args.flash_attn,
            "hearth": hearth_desc,
            "reference_only": args.reference_only,
            "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "reps": args.reps,
            "busy_cores": args.busy_cores,
            "max_other_load": args.max_other_load,
            "prompts": PARITY_PROMPTS,
            "parity_tokens": PARITY_TOKENS,
            "warmup": not args.no_warmup,
        },
        "rows": [],
    }

    failed = False
    if hearth is not None and not args.no_speed:
        report["meta"]["bandwidth"] = {}
        for t in threads:
            try:
                report["meta"]["bandwidth"][str(t)] = hearth.bandwidth(t)
                log(f"read bandwidth with {t} thread(s): {report['meta']['bandwidth'][str(t)] / 1e9:.1f} GB/s")
            except RunError as e:
                log(f"read bandwidth with {t} thread(s): {e}")
    for model in models:
        for t in threads:
            name = Path(model).name
            log(f"== {name}, {t} thread(s)")
            row = {"model": model, "model_name": name, "threads": t, "quant": "?", "errors": [],
                   "parity_skipped": args.no_parity}
            empty = {k: None for side in ("hearth", "ref") for k in (
                f"{side}_prefill_tok_s", f"{side}_decode_tok_s", f"{side}_ttft_ms", f"{side}_load_ms",
                f"{side}_peak_rss_mb")}
            row["speed"] = dict(empty, ratio_prefill_tok_s=None, ratio_decode_tok_s=None)
            if not args.no_speed:
                with BusyCores(args.busy_cores):
                    speed = measure_speed(hearth, ref, model, args.prompt_tokens, args.gen_tokens, t, args.reps, log,
                                          args.retries, args.max_other_load, args.busy_cores)
                row["speed"] = speed
                row["errors"] += speed["errors"]
                if speed["ref_samples"]:
                    row["quant"] = speed["ref_samples"][0].get("quant", "?")
            if not args.no_parity:
                log("    parity")
                ref_p = ours_p = None
                try:
                    ref_p = ref.parity(model, t, PARITY_PROMPTS, PARITY_TOKENS)
                    row["quant"] = ref_p.get("quant", row["quant"])
                except RunError as e:
                    row["errors"].append(f"llama.cpp parity: {e}")
                if hearth is not None:
                    try:
                        ours_p = hearth.parity(model, t, PARITY_PROMPTS, PARITY_TOKENS)
                    except RunError as e:
                        row["errors"].append(f"hearth parity: {e}")
                row["ref_parity"] = ref_p
                row["hearth_parity"] = ours_p
                if ref_p and ours_p:
                    row["parity"] = compare_parity(ours_p, ref_p)
                    try:
                        add_margins(ref, model, t, row["parity"])
                    except RunError as e:
                        row["errors"].append(f"llama.cpp margins: {e}")
                    log(f"    prompt tokens equal {row['parity']['tokenization_equal']}/{row['parity']['prompts']}, "
                        f"greedy identical {row['parity']['identical']}/{row['parity']['prompts']}")
            if row["errors"]:
                failed = True
            report["rows"].append(row)

    md = render_markdown(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path, json_path = Path(f"{out}.md"), Path(f"{out}.json")
    md_path.write_text(md, encoding="utf-8")
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(md)
    log(f"wrote {md_path} and {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
