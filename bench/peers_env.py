"""The interpreter benchmark 10 runs its variants with: the project's ``.venv`` plus the
``bench`` extra of pyproject.toml (the peer instrumentations), installed by the bench, never
by the test command.

The extra goes into an overlay virtualenv (``.venv/bench-peers``), not into ``.venv`` itself:
both peers register an ``opentelemetry_instrumentor`` entry point named ``litellm``, so in
``.venv`` every ``opentelemetry-instrument`` run of the test suite would switch them on
beside ours. The overlay's ``site-packages`` holds only the extra and a ``.pth`` line that adds
``.venv``'s ``site-packages`` after it (``site.addsitedir``, so its own ``.pth`` files, e.g.
the editable install of this package, work too): same packages, same versions, one more
layer. Created once (a few seconds, pip resolving against what ``.venv`` has), redone when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / ".venv" / "bench-peers"


def requirements() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["optional-dependencies"]["bench"])


def python() -> str:
    """The overlay's interpreter, created or updated first when needed."""
    reqs = requirements()
    main_site = sysconfig.get_paths()["purelib"]
    # Redone when pyproject.toml changes (the stack under the peers may have moved).
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + main_site.encode()
                          ).hexdigest()[:16]
    py = OVERLAY / "bin" / "python"
    stamp = OVERLAY / ".bench-installed"
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return str(py)
    print(f"bench: installing the bench extra into {OVERLAY} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(OVERLAY)],
                   check=True)
    site_dir = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    Path(site_dir, "_llmgine_otel_main_venv.pth").write_text(
        f"import site; site.addsitedir({main_site!r})\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--disable-pip-version-check", *reqs], check=True)
    stamp.write_text(want + "\n")
    return str(py)


if __name__ == "__main__":
    print(python())
