"""The tests' local OpenAI-compatible server (``tests/support/openai_server.py``) in a process
of its own, so its CPU never counts as the app's. Prints its base URL, serves until stdin
closes, then stops. ``python -m bench.llm_server``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.openai_server import OpenAIServer


def main() -> int:
    server = OpenAIServer()  # TCP_NODELAY, as a real server sets it
    print(server.base_url, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
