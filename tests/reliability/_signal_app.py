"""An app that publishes sessions, then waits to be stopped by a signal.

    python _signal_app.py MODE N_SESSIONS

Settings come from the environment (OTEL_EXPORTER_OTLP_ENDPOINT or LLMGINE_OTEL_DIR, ...).
MODE says what the application does about SIGTERM itself:

- ``default``: nothing (the package's handler flushes, then the process dies by SIGTERM);
- ``app_before``: installs its own handler before configure(); the handler prints
  ``app-handler`` and calls ``sys.exit(3)`` (a graceful stop: the at-exit shutdown flushes);
- ``app_after_chain``: installs its own handler after configure(), chaining to the previous
  one (the package's), which flushes and lets SIGTERM kill the process;
- ``sigint``: nothing; the test sends SIGINT (Python's KeyboardInterrupt path).

Prints ``ready <json>`` once everything is published (the json: produced counts, whether the
package installed its handler).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/ -> reliability._workload

from llmgine_otel import configure
from reliability._workload import session_events


def main() -> None:
    mode, n = sys.argv[1], int(sys.argv[2])

    def app_handler(signum: int, frame: Any) -> None:
        print("app-handler", flush=True)
        sys.exit(3)

    if mode == "app_before":
        signal.signal(signal.SIGTERM, app_handler)
    tel = configure(set_global=False)
    ours = signal.getsignal(signal.SIGTERM)
    if mode == "app_after_chain":
        prev = signal.signal(signal.SIGTERM, lambda s, f: (
            print("app-handler", flush=True), prev(s, f)))  # type: ignore[operator]
    for i in range(n):
        for ev in session_events(f"sig-{i:05d}"):
            tel.manager.observe_event(ev)
    # The price table loads on a daemon thread for ~1 s after configure(). An import on any
    # thread after an unhandled KeyboardInterrupt makes CPython forget it was unhandled
    # (README "Stop signals"), so the SIGINT case waits for it to pin what is ours.
    from llmgine_otel import cost

    warm = getattr(cost, "_warm", None)
    if warm is not None:
        warm.wait(60)
    print("ready " + json.dumps({
        "produced": dict(tel.stats.produced),
        "handler": getattr(ours, "__qualname__", repr(ours)),
    }), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
