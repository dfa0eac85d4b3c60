"""`llmgine-otel view --html`: one safe self-contained page, checked in real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from llmgine_otel.cli import main

from .cdp import INSTALL_HINT, Browser, chromium_path
from .make_data import LONG_CMD2, NORMAL_TRACE, error, missing_parent, normal, per_command
from .otlp_build import command, in_session, log, logs_line, session, span, spans_line

HOSTILE = "</script><script>window.__pwned = 1</script><!--"
HOSTILE_TRACE = "99999999999999999999999999999999"
TOOL_SPAN = "a000000000000004"  # execute_tool get_weather in the normal session


def _telemetry(tmp_path: Path) -> Path:
    """The fixture sessions plus one whose names and values try to break out of the page."""
    t = HOSTILE_TRACE
    hostile = [
        spans_line(
            [
                span(
                    t,
                    "e000000000000002",
                    "e000000000000001",
                    HOSTILE,
                    1,
                    5,
                    {
                        **command("c-x", "<b>Bold</b>"),
                        "note": "<img src=x onerror=alert(1)>",
                        "ratio": float("nan"),
                    },
                ),
                span(t, "e000000000000001", "", "session", 0, 6, session("sess-<i>x</i>")),
            ]
        ),
        logs_line([log(t, "e000000000000002", "CommandStartedEvent", 2, {"html": HOSTILE})]),
        # a second trace of the hostile session: its id is shown in a session header too
        spans_line([span("9999999999999999999999999999999a", "e00000000000000a", "", "x", 7, 8,
                         in_session("sess-<i>x</i>"))]),
    ]
    path = tmp_path / "telemetry.jsonl"
    lines = normal() + error() + missing_parent() + hostile + per_command()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "view.html"
    assert main(["view", str(_telemetry(tmp_path)), "--html", str(out)]) == 0
    capsys.readouterr()
    return out


def test_page_is_self_contained_and_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = _page(tmp_path, capsys).read_text(encoding="utf-8")
    assert html.count("</script>") == 2  # the data element and the code element, nothing else
    assert "<!--" not in html.split("<body>", 1)[1]
    assert "window.__pwned" in html  # present, but only as escaped JSON text
    assert "<img src=x" not in html and "<b>Bold</b>" not in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)  # nothing loaded from anywhere
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    raw = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', html, re.S)
    assert raw is not None
    data = json.loads(raw.group(1))
    names = {s["name"] for t in data["traces"] for s in t["spans"]}
    assert HOSTILE in names
    assert len(data["traces"]) == 10
    # in order of their first start: normal, sess-long, error, hostile, orphan, sess-short
    assert [len(s["trace_ids"]) for s in data["sessions"]] == [1, 4, 1, 2, 1, 1]


def test_page_in_headless_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if chromium_path() is None:
        pytest.fail(INSTALL_HINT)
    page = _page(tmp_path, capsys)
    browser = Browser(page.as_uri())
    try:
        before = tmp_path / "view.png"
        browser.screenshot(before)
        assert before.read_bytes().startswith(b"\x89PNG")
        assert browser.evaluate("document.querySelectorAll('details.trace').length") == 10
        assert browser.evaluate("document.querySelectorAll('.row').length") == 24
        # A session's traces are drawn together, under its header (sessions of one trace as
        # before, with no header).
        sessions = browser.evaluate(
            "[...document.querySelectorAll('section.session')].map(s => [s.dataset.sessionId,"
            " s.querySelectorAll('details.trace').length,"
            " s.querySelector('.s-head').innerText])")
        assert [(sid, n) for sid, n, _ in sessions] == [("sess-long", 4), ("sess-<i>x</i>", 2)]
        assert "session sess-<i>x</i>" in sessions[1][2]
        head = sessions[0][2]
        assert "session sess-long" in head and "ERROR \u00d72" in head and "4 traces" in head
        assert "2h00m00s" in head and "2 commands" in head
        inside = f'section.session details.trace[data-trace-id="{LONG_CMD2}"]'
        assert browser.evaluate(f"document.querySelector({json.dumps(inside)}) !== null")
        assert browser.evaluate("window.__pwned === undefined")
        names = browser.evaluate(
            "[...document.querySelectorAll('.row .name')].map(e => e.textContent)"
        )
        assert HOSTILE in names  # shown as text

        browser.click(f'.row[data-trace-id="{NORMAL_TRACE}"][data-span-id="{TOOL_SPAN}"]')
        browser.wait_for("document.getElementById('detail-attributes')")
        detail = browser.evaluate("document.getElementById('detail').innerText")
        assert "execute_tool get_weather" in detail
        assert "gen_ai.tool.name" in detail and "get_weather" in detail
        assert "gen_ai.tool.call.id" in detail and "call_1" in detail
        logs = browser.evaluate("document.getElementById('detail-logs').innerText")
        assert "ToolExecuteResultEvent" in logs and "sunny, 21°C" in logs
        assert (
            browser.evaluate("document.querySelector('.row.selected').dataset.spanId") == TOOL_SPAN
        )

        # Collapsing the command hides its three children; expanding shows them again.
        command_row = f'.row[data-trace-id="{NORMAL_TRACE}"][data-span-id="a000000000000002"]'
        browser.click(command_row + " .caret")
        hidden = (
            f"document.querySelectorAll('.row.hidden[data-trace-id=\"{NORMAL_TRACE}\"]').length"
        )
        assert browser.evaluate(hidden) == 3
        browser.click(command_row + " .caret")
        assert browser.evaluate(hidden) == 0

        after = tmp_path / "view-detail.png"
        browser.screenshot(after)
        shutil.copyfile(after, "/tmp/llmgine-view.png")
        requests = browser.requests()
    finally:
        browser.close()
    assert requests == [page.as_uri()], f"the page made network requests: {requests}"
