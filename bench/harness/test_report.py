"""Checks of the figures the report derives from raw runs (no processes, no timing).

    python3 -m unittest discover -s bench/harness -t bench
"""

import unittest

import summary
from harness import load, mtls, report


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
TOOLS = load.Tools("oha", "/bin/bench-load")


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
        cmd = load.argv(TOOLS, SC, "bench-weft", 9080, 15001, "0", 1)
        self.assertIn("--latency-correction", cmd)
        self.assertEqual(cmd[cmd.index("-q") + 1], "100")
        self.assertEqual(cmd[:3], ["taskset", "-c", "0"])
        self.assertIn("bench-weft:9080:127.0.0.1:15001", cmd)
        self.assertEqual(cmd[-1], "http://bench-weft:9080/1k")

    def test_closed_loop_has_no_rate(self):
        sc = load.Scenario("max", "http", None, 64, 5)
        cmd = load.argv(TOOLS, sc, "h", 9080, 1, None, 1)
        self.assertNotIn("-q", cmd)
        self.assertNotIn("--latency-correction", cmd)

    def test_grpc_runs_bench_load_which_checks_every_status(self):
        sc = load.Scenario("g", "grpc", 1000, 4, 5, streams=4)
        cmd = load.argv(TOOLS, sc, "h", 9082, 1, "0", 1, "/tmp/body")
        self.assertEqual(cmd[:5], ["taskset", "-c", "0", "/bin/bench-load", "grpc"])
        self.assertEqual(cmd[cmd.index("--rate") + 1], "1000")
        self.assertEqual(cmd[cmd.index("--authority") + 1], "h:9082")
        self.assertEqual(cmd[cmd.index("--target") + 1], "127.0.0.1:1")

    def test_bench_load_output_counts_non_zero_grpc_status_as_failed(self):
        out = load._from_bench_load({
            "requests": 10, "ok": 7, "failures": {"grpc-status 14": 2, "no grpc-status": 1},
            "grpc_status": {"0": 7, "14": 2}, "rps": 10.0, "response_bytes": 7168,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p99.9": 4.0},
        })
        self.assertEqual(out["requests"] - out["ok"], 3)
        self.assertEqual(out["statuses"], {"grpc-status 0": 7, "grpc-status 14": 2})
        self.assertEqual(out["errors"]["no grpc-status"], 1)


class MtlsCostTest(unittest.TestCase):
    def test_cost_is_mtls_minus_plaintext_per_plane(self):
        runs = [run("s", "direct", 0, 1, 1),
                run("s", "weft", 0, 1.1, 1.2, cpu=(0.05, 0.05)),
                run("s", "weft-mtls", 0, 1.2, 1.5, cpu=(0.08, 0.06)),
                run("s", "envoy", 0, 1.3, 2.0, cpu=(0.15, 0.15))]
        rows = report.mtls_cost(report.summarize(runs, [SC]))
        # Only weft has both pairs; 0.07 - 0.05 s per 1,000 requests per proxy.
        self.assertEqual([r["plane"] for r in rows], ["weft"])
        self.assertAlmostEqual(rows[0]["cpu_s_per_1k_cost"], 0.02)
        self.assertAlmostEqual(rows[0]["added_p99_mtls"], 0.5)

class SummaryTableTest(unittest.TestCase):
    def test_mtls_rows_are_differences_of_cpu_per_thousand(self):
        def f(cpu, p99=1.0):
            return {"cpu_s_per_1k": cpu, "added_ms": {"p50": 0.1, "p99": p99}, "rps": 1000.0}
        data = {"meta": {"grpc_check": "..."}, "memory": {}, "summary": {
            "h1-1000": {"weft": f(0.050), "envoy": f(0.150), "nginx": f(0.025),
                        "weft-mtls": f(0.070), "envoy-mtls": f(0.180), "nginx-mtls": f(0.045)},
            "h1-200-newconn": {"weft": f(0.2), "envoy": f(0.4), "nginx": f(0.1),
                               "weft-mtls": f(0.35), "envoy-mtls": f(0.5), "nginx-mtls": f(0.6)},
        }}
        rows = {r.split(" | ")[0].lstrip("| "): r for r in summary.rows(data)}
        cost = rows["mTLS cost per 1,000 requests (mTLS − plaintext CPU)"]
        self.assertIn("| 20 ms | 30 ms | 20 ms | 0.67 | 1.00 |", cost)
        handshake = next(v for k, v in rows.items() if k.startswith("mTLS handshake"))
        self.assertIn("| 150 ms | 100 ms | 500 ms | 1.50 | 0.30 |", handshake)


class MtlsConfigTest(unittest.TestCase):
    def test_strict_mesh_wide_and_permissive_for_the_plaintext_pairs(self):
        modes = {(d["metadata"]["namespace"], d["spec"]["mtls"]["mode"]) for d in mtls.policies()}
        self.assertEqual(modes, {("istio-system", "STRICT"), ("default", "PERMISSIVE")})

    def test_one_connection_per_request_rule_names_the_service(self):
        (dr,) = mtls.one_conn_per_request([("secure", "bench-weft-mtls.secure.svc.cluster.local")])
        self.assertEqual(dr["metadata"]["namespace"], "secure")
        self.assertEqual(dr["spec"]["host"], "bench-weft-mtls.secure.svc.cluster.local")
        self.assertEqual(dr["spec"]["trafficPolicy"]["connectionPool"]["http"]["maxRequestsPerConnection"], 1)


if __name__ == "__main__":
    unittest.main()
