"""Time every observe_event call of the very first session in a fresh interpreter.

    python _first_publish.py ENDPOINT  -> prints JSON {"max_ms": ..., "slowest": [...]}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ -> reliability._workload

from llmgine_otel import configure
from reliability._workload import session_events


def main() -> None:
    tel = configure(set_global=False, endpoint=sys.argv[1], console=False,
                    output_dir=Path(sys.argv[2]))
    timings = []
    for ev in session_events("first-session"):
        t0 = time.perf_counter()
        tel.manager.observe_event(ev)
        timings.append((time.perf_counter() - t0, type(ev).__name__))
    tel.shutdown(timeout_s=0.5)
    worst = max(timings)
    print(json.dumps({"max_ms": worst[0] * 1e3, "slowest_event": worst[1],
                      "all_ms": [[round(t * 1e3, 3), n] for t, n in timings]}))


if __name__ == "__main__":
    main()
