"""`llmgine-otel tail`: summaries as sessions end, partial lines, rotation, --once."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmgine_otel.cli import main
from llmgine_otel.cli.tail import _Follower

from .make_data import ERROR_TRACE, NORMAL_TRACE, error, messy, missing_parent, normal

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def test_once_prints_one_line_per_finished_session(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", str(DATA / "combined.jsonl"), "--once", "--color", "never"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert "session sess-normal" in lines[0] and NORMAL_TRACE in lines[0]
    assert "2 LLM calls" in lines[0] and "OK" in lines[0]
    assert "session sess-error" in lines[1] and "ERROR (3 errors)" in lines[1]
    assert err.strip() == (
        f"llmgine-otel tail: {DATA / 'combined.jsonl'}: 1 trace(s) whose root span has not "
        "arrived yet, not shown"
    )


def test_once_waits_for_a_partial_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(messy()), encoding="utf-8")
    assert main(["tail", str(path), "--once", "--color", "never"]) == 0
    out, err = capsys.readouterr()
    assert "session sess-messy" in out
    assert len(err.strip().splitlines()) == 3
    assert "incomplete" in err.strip().splitlines()[-1]
    assert main(["tail", str(tmp_path / "absent.jsonl"), "--once"]) == 1


def test_follower_keeps_a_partial_line_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = normal()[0].encode()
    path.write_bytes(line[:100])
    follower = _Follower(path)
    try:
        assert follower.lines() == []
        with path.open("ab") as f:
            f.write(line[100:] + b"\n")
        assert follower.lines() == [line]
        assert follower.lines() == []
    finally:
        follower.close()


def _has_open(pid: int, path: Path, timeout: float = 60) -> bool:
    """Whether process ``pid`` opened ``path`` within ``timeout`` seconds (Linux /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd) == str(path):
                    return True
            except OSError:
                continue
        time.sleep(0.05)
    return False


def _writer(path: Path, rotated: Path) -> None:
    """Append sessions slowly, split mid-line, then rotate to a new current file."""
    first = "\n".join(normal()) + "\n"
    cut = len(first) // 3
    with path.open("a", encoding="utf-8") as f:
        f.write(first[:cut])
        f.flush()
        time.sleep(0.4)
        f.write(first[cut:])
        f.flush()
        time.sleep(0.3)
        f.write("\n".join(missing_parent()) + "\n")
        f.flush()
    time.sleep(0.3)
    path.rename(rotated)  # what the Collector's file exporter does when it rotates
    path.write_text("\n".join(error()) + "\n", encoding="utf-8")


def test_follows_appends_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    path.write_text("")
    rotated = tmp_path / "telemetry-2025-01-01T12-00-00.000.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmgine_otel", "tail", str(path), "--interval", "0.05"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    writer = threading.Thread(target=_writer, args=(path, rotated))
    got: list[str] = []
    try:
        assert _has_open(proc.pid, path), "tail never opened the file"
        writer.start()
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                got.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        writer.join()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(got) == 2, got
    assert NORMAL_TRACE in got[0] and "session sess-normal" in got[0]
    assert ERROR_TRACE in got[1] and "ERROR (3 errors)" in got[1]
    stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr == ""  # not a TTY: no status line; the split line was never reported


def test_a_session_of_several_traces_is_followed_to_its_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One trace per command: a line as the session starts, one per command as it ends, and
    at the session's end one line with the totals of all its traces."""
    assert main(["tail", str(DATA / "per_command.jsonl"), "--once", "--color", "never"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 5 and not err
    assert "session sess-long started" in lines[0]
    assert "command ChatCommand (session sess-long)" in lines[1] and "  OK  " in lines[1]
    assert "session sess-short  50.0ms  OK  2 spans" in lines[2]  # one trace: as before
    assert "command ChatCommand (session sess-long)" in lines[3] and "ERROR" in lines[3]
    assert lines[4].startswith("2025-01-01 12:00:00.000Z  session sess-long ended  4 traces")
    assert "2h00m00s  ERROR (2 errors)  2 commands  7 spans  1 LLM call" in lines[4]
