"""Checks of the figures the report derives from raw runs (no processes, no timing).

    python3 -m unittest discover -s bench/harness -t bench
"""

import unittest

from harness import load, report


def run(scenario, variant, rnd, p50, p99, ok=1000, cpu=(0.0, 0.0), hwm=(1024, 1024)):
    lat = {"p50": p50, "p90": p50, "p99": p99, "p99.9": p99}
    procs = {}
    if variant != "direct":
        procs = {
            "client": {"cpu_s": cpu[0], "hwm_kib": hwm[0]},
            "server": {"cpu_s": cpu[1], "hwm_kib": hwm[1]},
        }
    return {
        "scenario": scenario, "variant": variant, "round": rnd,
        "load": {"requests": ok, "ok": ok, "rps": ok / 10.0, "latency_ms": lat},
        "procs": procs,
    }


SC = load.Scenario("s", "http", 100, 16, 10)


class SummarizeTest(unittest.TestCase):
    def test_added_latency_is_paired_by_round_then_the_median(self):
        runs = [
            run("s", "direct", 0, 1.0, 5.0), run("s", "weft", 0, 1.5, 6.0),
            run("s", "direct", 1, 3.0, 9.0), run("s", "weft", 1, 3.2, 9.5),
            run("s", "direct", 2, 2.0, 7.0), run("s", "weft", 2, 2.9, 9.0),
        ]
        weft = report.summarize(runs, [SC])["s"]["weft"]
        # Per round: p50 +0.5, +0.2, +0.9 -> median 0.5; p99 +1.0, +0.5, +2.0 -> 1.0.
        self.assertAlmostEqual(weft["added_ms"]["p50"], 0.5)
        self.assertAlmostEqual(weft["added_ms"]["p99"], 1.0)
        self.assertEqual(weft["added_ms_spread"]["p99"], (0.5, 2.0))

    def test_cpu_is_per_proxy_per_thousand_answered_requests(self):
        runs = [run("s", "direct", 0, 1, 1), run("s", "envoy", 0, 2, 2, ok=2000, cpu=(0.6, 0.2))]
        envoy = report.summarize(runs, [SC])["s"]["envoy"]
        # 0.8 s for the pair over 2,000 requests: 0.2 s per 1,000 per proxy.
        self.assertAlmostEqual(envoy["cpu_s_per_1k"], 0.2)
        self.assertAlmostEqual(envoy["cpu_s_per_1k_by_side"]["client"], 0.3)

    def test_rss_is_the_larger_side_and_the_first_round_is_kept(self):
        runs = [
            run("s", "direct", 0, 1, 1), run("s", "weft", 0, 1, 1, hwm=(2048, 4096)),
            run("s", "direct", 1, 1, 1), run("s", "weft", 1, 1, 1, hwm=(8192, 1024)),
        ]
        weft = report.summarize(runs, [SC])["s"]["weft"]
        self.assertAlmostEqual(weft["rss_peak_mib_first_round"], 4.0)
        self.assertAlmostEqual(weft["rss_peak_mib"], 6.0)  # median of 4 and 8


class RatioTest(unittest.TestCase):
    def test_a_ratio_over_nothing_is_not_a_number(self):
        self.assertIsNone(report._ratio(1.0, 0.0))
        self.assertIsNone(report._ratio(1.0, -0.2))
        self.assertIsNone(report._ratio(None, 1.0))
        self.assertAlmostEqual(report._ratio(1.0, 4.0), 0.25)

    def test_targets_name_what_is_missed(self):
        summary = {"h1-1000": {"weft": {"rss_peak_mib_first_round": 12.0}}}
        ratio = {
            "added_p99": {"weft/envoy": 0.4}, "cpu_s_per_1k": {"weft/envoy": 0.5, "weft/nginx": 1.2},
            "max_rps": {"weft/envoy": None},
        }
        rows = {r["target"]: r["met"] for r in report.targets(summary, ratio, "h1-1000")}
        self.assertEqual(rows["added p99 <= 0.5x Envoy's"], True)
        self.assertEqual(rows["CPU per 1,000 requests <= 0.33x Envoy's"], False)
        self.assertEqual(rows["CPU per 1,000 requests <= 1.5x nginx's"], True)
        self.assertEqual(rows["RSS <= 10 MB per proxy at 1,000 rps (peak, first round)"], False)
        self.assertIsNone(rows["max rps >= 4x Envoy's"])


class LoadArgvTest(unittest.TestCase):
    def test_open_loop_runs_correct_for_coordinated_omission(self):
        cmd = load.argv("oha", SC, "bench-weft", 9080, 15001, "0", 1)
        self.assertIn("--latency-correction", cmd)
        self.assertEqual(cmd[cmd.index("-q") + 1], "100")
        self.assertEqual(cmd[:3], ["taskset", "-c", "0"])
        self.assertIn("bench-weft:9080:127.0.0.1:15001", cmd)
        self.assertEqual(cmd[-1], "http://bench-weft:9080/1k")

    def test_closed_loop_has_no_rate(self):
        sc = load.Scenario("max", "http", None, 64, 5)
        cmd = load.argv("oha", sc, "h", 9080, 1, None, 1)
        self.assertNotIn("-q", cmd)
        self.assertNotIn("--latency-correction", cmd)

    def test_grpc_is_a_framed_post_over_h2(self):
        sc = load.Scenario("g", "grpc", 1000, 4, 5, streams=4)
        cmd = load.argv("oha", sc, "h", 9082, 1, None, 1, "/tmp/body")
        self.assertIn("--http2", cmd)
        self.assertEqual(cmd[cmd.index("-m") + 1], "POST")
        self.assertIn("content-type: application/grpc", cmd)
        self.assertEqual(cmd[-1], f"http://h:9082{load.GRPC_PATH}")


if __name__ == "__main__":
    unittest.main()
