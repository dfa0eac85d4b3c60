"""Benchmark names -> modules, in suite order."""

MODULES = {
    "overhead": "bench.b1_overhead",
    "baseline": "bench.b2_baseline",
    "loop_lag": "bench.b3_loop_lag",
    "throughput": "bench.b4_throughput",
    "memory": "bench.b5_memory",
    "startup": "bench.b6_startup",
    "scaling": "bench.b7_scaling",
    "knobs": "bench.b8_knobs",
    "profile": "bench.b9_profile",
    "llm_peers": "bench.b10_llm_peers",
    "protocols": "bench.b11_otlp_protocols",
}
