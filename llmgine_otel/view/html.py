"""Render traces as ONE self-contained HTML page: inline CSS, JS and data, nothing fetched."""

from __future__ import annotations

import json
import math
from html import escape
from importlib import resources
from typing import Any

from llmgine_otel.view.model import Session, json_default, session_json, trace_json

# No network at all: the page may only use what is inline in it.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
# Characters that could end the <script> element or confuse an HTML parser, as JSON escapes.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _asset(name: str) -> str:
    """A CSS or JS file shipped beside this module."""
    return resources.files("llmgine_otel.view").joinpath(name).read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as strings, which JSON.parse would refuse."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def embed_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no `<!--`)."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=json_default)
    except ValueError:
        text = json.dumps(_finite(data), ensure_ascii=False, default=json_default)
    return text.translate(_SCRIPT_SAFE)


def render_html(sessions: list[Session], *, title: str) -> str:
    """The page: trace waterfalls with collapsible spans, a session's traces together under
    its header, and a detail panel for the clicked span."""
    traces = [t for s in sessions for t in s.traces]
    data = {"title": title, "traces": [trace_json(t) for t in traces],
            "sessions": [session_json(s) for s in sessions]}
    spans = sum(len(t.spans) for t in traces)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmgine traces: {escape(title)}</title>
<style>
{_asset("page.css")}
</style>
</head>
<body>
<header>
<h1>llmgine traces</h1>
<p class="sub">{escape(title)} · {len(traces)} traces · {spans} spans</p>
</header>
<main>
<section id="traces" aria-label="traces"></section>
<aside id="detail" aria-live="polite"><p class="hint">Click a span to see its attributes and \
log records.</p></aside>
</main>
<script type="application/json" id="trace-data">{embed_json(data)}</script>
<script>
{_asset("page.js")}
</script>
</body>
</html>
"""
