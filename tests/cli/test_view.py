"""`llmgine-otel view`: golden waterfalls, --json, filters, problems and a 100,000-span file."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmgine_otel.cli import main
from llmgine_otel.view.terminal import choose_style

from .make_data import (
    ERROR_TRACE,
    LONG_CMD1,
    LONG_CMD2,
    LONG_END,
    LONG_START,
    NORMAL_TRACE,
    ORPHAN_TRACE,
    OTHER_TRACE,
)
from .otlp_build import big_file

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]
UPDATE = os.environ.get("LLMGINE_UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _needs_genai_prices() -> None:
    """The goldens show costs computed offline, which needs the `cost` extra."""
    try:
        import genai_prices  # noqa: F401
    except ImportError:
        pytest.fail("genai-prices is needed for these tests: pip install -e '.[cost]'")


def view(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `llmgine-otel view ARGS` in-process: (exit code, stdout, stderr)."""
    code = main(["view", *args])
    out, err = capsys.readouterr()
    return code, out, err


# collector_demo.jsonl: the demo sent through the real bundled Collector (its file exporter).
# per_command.jsonl: a 2-hour session traced one trace per command (the default trace shape).
@pytest.mark.parametrize(
    "name", ["normal", "error", "missing_parent", "messy", "collector_demo", "per_command"]
)
def test_waterfall_matches_golden(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = view(capsys, str(DATA / f"{name}.jsonl"), "--width", "100", "--color", "never")
    golden = DATA / f"{name}.golden.txt"
    if UPDATE:
        golden.write_text(out + "--- stderr ---\n" + err, encoding="utf-8")
    expected_out, _, expected_err = golden.read_text(encoding="utf-8").partition("--- stderr ---\n")
    assert out == expected_out
    assert err == expected_err.replace("tests/cli/data/", f"{DATA}/")
    assert code == 0
    assert "\x1b[" not in out


def test_golden_shows_what_matters(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = view(capsys, str(DATA / "normal.jsonl"), "--width", "100", "--color", "never")
    assert "gpt-4o-mini · 1,200 in / 150 out tokens (300 cached) · $0.000247" in out
    assert "execute_tool get_weather" in out
    assert "2 LLM calls" in out and "$0.000521" in out  # recorded + computed from tokens
    _, out, _ = view(capsys, str(DATA / "error.jsonl"), "--width", "100", "--color", "never")
    assert "ERROR (3 errors)" in out
    assert "✗ ToolError: weather service down" in out
    assert "✗ RateLimitError: 429 Too Many Requests" in out


def test_messy_file_reports_each_problem_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = view(capsys, str(DATA / "messy.jsonl"), "--color", "never")
    assert code == 0 and "session sess-messy" in out
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert "messy.jsonl:2: not valid JSON" in lines[0]
    assert "messy.jsonl:3: not OTLP JSON" in lines[1]
    assert "messy.jsonl:4: not valid JSON (truncated write?)" in lines[2]


def test_missing_parent_is_shown_and_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = view(capsys, str(DATA / "missing_parent.jsonl"), "--color", "never")
    assert code == 0
    assert out.count("(parent missing)") == 2
    assert err.count("\n") == 1 and "2 span(s) whose parent never arrived" in err


def test_nothing_readable_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = view(capsys, str(tmp_path / "absent.jsonl"))
    assert (code, out) == (1, "")
    assert err.count("\n") == 2  # the reader's line and the verdict
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n")
    code, _, err = view(capsys, str(junk))
    assert code == 1 and "no spans or log records" in err


def test_color_always_marks_errors_red(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = view(capsys, str(DATA / "error.jsonl"), "--color", "always")
    assert "\x1b[1;31m" in out


def test_color_auto_needs_a_tty_and_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        encoding = "utf-8"

        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert choose_style("auto", Tty()).color
    assert not choose_style("auto", io.StringIO()).color
    monkeypatch.setenv("NO_COLOR", "1")
    assert not choose_style("auto", Tty()).color
    assert choose_style("always", io.StringIO()).color


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = view(capsys, str(DATA / "combined.jsonl"), "--json")
    assert code == 0
    doc = json.loads(out)
    by_id = {t["trace_id"]: t for t in doc["traces"]}
    assert set(by_id) == {NORMAL_TRACE, ERROR_TRACE, ORPHAN_TRACE}
    normal = by_id[NORMAL_TRACE]
    assert normal["session_id"] == "sess-normal"
    assert (normal["status"], normal["span_count"], normal["llm_calls"]) == ("OK", 5, 2)
    assert (normal["input_tokens"], normal["output_tokens"]) == (2700, 230)
    assert normal["cost_usd"] == pytest.approx(0.0002475 + 0.000273)
    assert normal["duration_ms"] == 2500.0
    spans = normal["spans"]
    assert [(s["name"], s["depth"]) for s in spans] == [
        ("session", 0),
        ("command ChatCommand", 1),
        ("chat gpt-4o-mini", 2),
        ("execute_tool get_weather", 2),
        ("chat gpt-4o-mini", 2),
    ]
    assert [log["event_name"] for log in spans[1]["logs"]] == [
        "CommandStartedEvent",
        "CommandResultEvent",
    ]
    assert spans[3]["attributes"]["gen_ai.tool.name"] == "get_weather"
    error = by_id[ERROR_TRACE]
    assert (error["status"], error["errors"]) == ("ERROR", 3)
    orphan = by_id[ORPHAN_TRACE]
    assert orphan["missing_parents"] == 2
    assert [s["parent_missing"] for s in orphan["spans"]] == [True, False, True]


def _ids(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code, out, _ = view(capsys, str(DATA / "combined.jsonl"), "--json", *args)
    assert code == 0
    return [t["trace_id"] for t in json.loads(out)["traces"]]


def test_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert _ids(capsys, "--errors") == [ERROR_TRACE]
    assert _ids(capsys, "--trace", NORMAL_TRACE) == [NORMAL_TRACE]
    assert _ids(capsys, "--trace", NORMAL_TRACE[:8].upper()) == [NORMAL_TRACE]  # a prefix
    assert _ids(capsys, "--session", "sess-error") == [ERROR_TRACE]
    assert _ids(capsys, "--slowest", "2") == [NORMAL_TRACE, ERROR_TRACE]  # 2.5 s, then 1.0 s
    assert _ids(capsys, "--slowest", "1", "--errors") == [ERROR_TRACE]
    code, out, err = view(capsys, str(DATA / "combined.jsonl"), "--session", "nope")
    assert (code, out) == (1, "") and "no trace matches" in err


def test_width_is_respected(capsys: pytest.CaptureFixture[str]) -> None:
    for width in (60, 80, 140):
        _, out, _ = view(capsys, str(DATA / "combined.jsonl"), "--width", str(width))
        assert max(len(line) for line in out.splitlines()) <= width


def test_100k_spans_view_in_a_few_seconds(tmp_path: Path) -> None:
    """Timed as the child's CPU time (user + sys): wall time on a shared machine says little."""
    path = tmp_path / "big.jsonl"
    spans = big_file(path, sessions=1000, spans_per_session=100)
    assert spans == 100_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for label, extra in (
        ("waterfall", []),
        ("--json", ["--json"]),
        ("--slowest 5", ["--slowest", "5"]),
    ):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "llmgine_otel", "view", str(path), "--width", "120", *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        wall[label] = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[label] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        outputs[label] = proc.stdout
    print(
        "\n100,000 spans, CPU (wall): "
        + ", ".join(f"{k} {cpu[k]:.2f}s ({wall[k]:.2f}s)" for k in cpu)
    )
    assert max(cpu.values()) < 20
    assert outputs["waterfall"].endswith("1,000 traces · 100,000 spans · 20 with errors\n")
    assert len(json.loads(outputs["--json"])["traces"]) == 1000
    assert "\n5 traces · 500 spans · " in outputs["--slowest 5"]


def test_a_sessions_traces_are_shown_together(capsys: pytest.CaptureFixture[str]) -> None:
    """One trace per command: the session's traces come together under one header (another
    session that started in between comes after them), in the waterfall and in --json."""
    path = str(DATA / "per_command.jsonl")
    _, out, _ = view(capsys, path, "--width", "100", "--color", "never")
    lines = out.splitlines()
    assert lines[0] == "session sess-long · 4 traces · service llmgine"
    assert "2h00m00s · ERROR (2 errors) · 2 commands · 7 spans · 1 LLM call" in lines[1]
    order = [out.index(f"trace {t}") for t in (LONG_START, LONG_CMD1, LONG_CMD2, LONG_END,
                                                OTHER_TRACE)]
    assert order == sorted(order)
    _, out, _ = view(capsys, path, "--json")
    doc = json.loads(out)
    assert [t["trace_id"] for t in doc["traces"]] == [
        LONG_START, LONG_CMD1, LONG_CMD2, LONG_END, OTHER_TRACE]
    long, short = doc["sessions"]
    assert long["session_id"] == "sess-long" and short["session_id"] == "sess-short"
    assert long["trace_ids"] == [LONG_START, LONG_CMD1, LONG_CMD2, LONG_END]
    assert (long["status"], long["errors"], long["commands"], long["span_count"]) == \
        ("ERROR", 2, 2, 7)
    assert long["duration_ms"] == 2 * 3_600_000
    assert short["trace_ids"] == [OTHER_TRACE] and short["status"] == "OK"
    # --session picks every trace of the session (found by session.id on every span).
    _, out, _ = view(capsys, path, "--json", "--session", "sess-long")
    assert [t["trace_id"] for t in json.loads(out)["traces"]] == [
        LONG_START, LONG_CMD1, LONG_CMD2, LONG_END]
