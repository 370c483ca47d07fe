"""Checks of the comparison script's own logic (no model, no llama.cpp needed).

Run with: python3 -m unittest bench/test_compare_llamacpp.py
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_llamacpp as c  # noqa: E402


class FirstDifference(unittest.TestCase):
    def test_equal_sequences_have_none(self):
        self.assertIsNone(c.first_difference([1, 2, 3], [1, 2, 3]))
        self.assertIsNone(c.first_difference([], []))

    def test_first_mismatch_index(self):
        self.assertEqual(c.first_difference([1, 2, 3, 4], [1, 2, 9, 4]), 2)
        self.assertEqual(c.first_difference([7], [8]), 0)

    def test_prefix_differs_at_shorter_length(self):
        # One engine stopped at an end-of-generation token earlier than the other.
        self.assertEqual(c.first_difference([1, 2], [1, 2, 3]), 2)
        self.assertEqual(c.first_difference([1, 2, 3], [1]), 1)


class ParityComparison(unittest.TestCase):
    def test_counts_tokenization_and_generation_separately(self):
        ref = {"results": [
            {"prompt": "a", "prompt_tokens": [1, 2], "tokens": [5, 6, 7], "text": "x"},
            {"prompt": "b", "prompt_tokens": [3], "tokens": [8, 9], "text": "y"},
        ]}
        ours = {"results": [
            {"prompt": "a", "prompt_tokens": [1, 2], "tokens": [5, 6, 7], "text": "x"},
            {"prompt": "b", "prompt_tokens": [4], "tokens": [8, 1], "text": "z"},
        ]}
        p = c.compare_parity(ours, ref)
        self.assertEqual((p["prompts"], p["tokenization_equal"], p["identical"]), (2, 1, 1))
        self.assertEqual(p["rows"][1]["prompt_first_diff"], 0)
        self.assertEqual(p["rows"][1]["first_diff"], 1)
        self.assertIsNone(p["rows"][0]["first_diff"])


class JsonFromStdout(unittest.TestCase):
    def test_whole_stdout_object(self):
        self.assertEqual(c._last_json_object('{"a": 1}\n'), {"a": 1})

    def test_last_object_line_after_log_lines(self):
        self.assertEqual(c._last_json_object('loading...\n{"a": 1}\n{"b": 2}\n'), {"b": 2})

    def test_no_object_is_an_error(self):
        with self.assertRaises(c.RunError):
            c._last_json_object("nothing here\n[1, 2]\n")


class OtherLoadMeter(unittest.TestCase):
    def test_the_measured_process_counts_as_ours(self):
        import subprocess

        with c.OtherLoad() as load:
            subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                            "while time.process_time() - t < 0.3: pass"], check=True)
        # The child's CPU time is ours, so it is subtracted from what /proc/stat counted.
        self.assertGreaterEqual(load.ours, 0.3)
        self.assertIsNotNone(load.cpus)
        self.assertGreaterEqual(load.cpus, 0.0)


class Markdown(unittest.TestCase):
    def report(self, reference_only, contended=False):
        speed = {
            "hearth_samples": [{"other_cpus_during": 0.0, "contended": False}],
            "ref_samples": [{"other_cpus_during": 0.1, "contended": contended}],
            "errors": [], "ratio_prefill_tok_s": 0.5, "ratio_decode_tok_s": 1.25,
        }
        for side, pre, dec in (("hearth", 100.0, 50.0), ("ref", 200.0, 40.0)):
            speed.update({f"{side}_prefill_tok_s": pre, f"{side}_decode_tok_s": dec, f"{side}_ttft_ms": 10.0,
                          f"{side}_load_ms": 20.0, f"{side}_peak_rss_mb": 30.0})
        ref_p = {"results": [{"prompt": "p|q", "prompt_tokens": [1], "tokens": [2, 3], "text": "t\nu"}]}
        ours_p = {"results": [{"prompt": "p|q", "prompt_tokens": [1], "tokens": [2, 4], "text": "t v"}]}
        row = {"model_name": "m.gguf", "quant": "Q4_1", "threads": 2, "speed": speed, "errors": [],
               "ref_parity": ref_p}
        if not reference_only:
            row["parity"] = c.compare_parity(ours_p, ref_p)
        meta = {"date": "d", "commit": "c", "cpu": "cpu", "cpus": 2, "cpu_flags": "avx2", "os": "Linux",
                "reference_version": "0.3.36", "flash_attn": "off", "hearth": "h", "reference_only": reference_only,
                "prompt_tokens": 128, "gen_tokens": 64, "reps": 3, "busy_cores": 0, "prompts": ["p|q"],
                "parity_tokens": 32}
        return {"meta": meta, "rows": [row]}

    def test_comparison_row_has_both_engines_ratios_and_first_difference(self):
        md = c.render_markdown(self.report(False))
        row = next(line for line in md.splitlines() if line.startswith("| m.gguf | Q4_1 | 2 | 100.0"))
        cells = [x.strip() for x in row.strip("|").split("|")]
        self.assertEqual(cells[3:], ["100.0", "200.0", "0.50", "50.0", "40.0", "1.25", "1/1", "0/1", "1"])
        self.assertIn("p\\|q", md)  # a pipe in a prompt does not break the table
        self.assertNotIn("not reliable", md)
        self.assertIn("every run ran on an otherwise idle machine", md)

    def test_contended_runs_are_flagged(self):
        md = c.render_markdown(self.report(False, contended=True))
        self.assertIn("1 of 2 runs never ran alone", md)

    def test_decode_against_the_memory_bound(self):
        report = self.report(False)
        report["meta"]["bandwidth"] = {"2": 20e9}
        report["rows"][0]["speed"]["decode_bytes_per_token"] = 100e6
        md = c.render_markdown(report)
        # Bound: 20 GB/s ÷ 100 MB = 200 tok/s; 50 and 40 tok/s are 25% and 20% of it.
        self.assertIn("| m.gguf | Q4_1 | 2 | 20.0 | 100.0 | 200.0 | 50.0 (25%) | 40.0 (20%) |", md)

    def test_the_cache_a_token_reads_counts_toward_the_bound(self):
        report = self.report(False)
        report["meta"]["bandwidth"] = {"2": 20e9}
        report["rows"][0]["speed"]["decode_bytes_per_token"] = 100e6
        report["rows"][0]["speed"]["decode_cache_bytes_per_token"] = 25e6
        md = c.render_markdown(report)
        # 125 MB a token: bound 160 tok/s; 50 and 40 tok/s are 31% and 25% of it.
        self.assertIn("| m.gguf | Q4_1 | 2 | 20.0 | 125.0 | 160.0 | 50.0 (31%) | 40.0 (25%) |", md)

    def test_the_bound_measured_next_to_each_run(self):
        report = self.report(False)
        report["meta"]["bandwidth"] = {"2": 20e9}
        speed = report["rows"][0]["speed"]
        speed["decode_bytes_per_token"] = 100e6
        # Bandwidth measured next to the row's runs (median 10 GB/s: bound 100 tok/s); Hearth's
        # share is the median of each run against its own measurement, not of the medians.
        speed["read_bytes_per_second"] = 10e9
        speed["hearth_bound_fraction"] = 0.62
        md = c.render_markdown(report)
        self.assertIn("| m.gguf | Q4_1 | 2 | 10.0 | 100.0 | 100.0 | 50.0 (62%) | 40.0 (40%) |", md)

    @staticmethod
    def measure_with_bandwidths(hearth_sample: dict) -> dict:
        """`measure_speed` over three runs of Hearth giving `hearth_sample`, the bandwidth
        measured next to them 10, 20 and 10 GB/s."""
        class FakeHearth:
            def __init__(self):
                self.bw = iter([10e9, 20e9, 10e9])

            def bandwidth(self, threads):
                return next(self.bw)

            def bench(self, model, n, m, threads):
                return dict(hearth_sample)

        class FakeRef:
            def bench(self, model, n, m, threads):
                return {"prefill_tok_s": 90.0, "decode_tok_s": 40.0}

        return c.measure_speed(FakeHearth(), FakeRef(), "m.gguf", 8, 8, 2, 3, lambda _: None, retries=0,
                               max_other=1e9)

    def test_bound_fraction_from_samples(self):
        out = self.measure_with_bandwidths(
            {"prefill_tok_s": 100.0, "decode_tok_s": 80.0, "decode_bytes_per_token": 100e6})
        self.assertEqual(out["read_bytes_per_second"], 10e9)
        # 80 tok/s × 100 MB = 8 GB/s: 80% of 10 GB/s twice, 40% of 20 GB/s once.
        self.assertAlmostEqual(out["hearth_bound_fraction"], 0.8)

    def test_bound_fraction_counts_the_cache(self):
        out = self.measure_with_bandwidths(
            {"prefill_tok_s": 100.0, "decode_tok_s": 80.0, "decode_bytes_per_token": 100e6,
             "decode_cache_bytes_per_token": 25e6})
        # 80 tok/s × 125 MB = 10 GB/s: 100% of 10 GB/s twice, 50% of 20 GB/s once.
        self.assertAlmostEqual(out["hearth_bound_fraction"], 1.0)
        self.assertEqual(out["decode_cache_bytes_per_token"], 25e6)

    def test_skipped_parity_is_not_an_error(self):
        report = self.report(False)
        del report["rows"][0]["parity"]
        report["rows"][0]["parity_skipped"] = True
        md = c.render_markdown(report)
        self.assertIn("| not run |", md)

    def test_reference_only_table(self):
        md = c.render_markdown(self.report(True))
        self.assertIn("| m.gguf | Q4_1 | 2 | 200.0 | 40.0 |", md)
        self.assertNotIn("hearth text", md)


if __name__ == "__main__":
    unittest.main()
