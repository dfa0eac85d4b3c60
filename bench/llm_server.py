"""The tests' local OpenAI-compatible server (``tests/support/openai_server.py``) in a process
of its own, so its CPU never counts as the app's. Prints its base URL, serves until stdin
closes, then stops. ``python -m bench.llm_server``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import openai_server
from support.openai_server import OpenAIServer


def main() -> int:
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per call). A real server sets TCP_NODELAY; so does this.
    openai_server._Handler.disable_nagle_algorithm = True
    server = OpenAIServer()
    print(server.base_url, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
