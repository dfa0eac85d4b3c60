"""Privacy: canaries in prompts, completions, tool arguments and command fields never reach
the Collector with the defaults; with content capture on, secret-looking canaries still never
do while ordinary content does. Checked by grepping the raw bytes the Collector wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability._workload import Content, session_events, wait_collected
from reliability.conftest import collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SESSIONS = 20

CANARIES = {
    "prompt": "CANARY-PROMPT-7f3a",
    "system": "CANARY-SYSTEM-91bd",
    "completion": "CANARY-COMPLETION-c0de",
    "tool_arg": "CANARY-TOOLARG-5e11",
    "tool_result": "CANARY-TOOLRESULT-aa42",
    "command_prompt": "CANARY-COMMAND-0b0e",
}
# (what is embedded, the part that must never appear)
SECRETS = {
    "api_key": ("sk-proj-CANARYKEY0123456789abcdef", "CANARYKEY0123456789abcdef"),
    "bearer": ("Bearer CANARYBEARER0123456789", "CANARYBEARER0123456789"),
    "password": ("password=CANARYPASS0123", "CANARYPASS0123"),
}


def _raw_output(workdir: Path) -> bytes:
    """Every byte the Collector wrote: file exporter output (incl. rotated) and its log."""
    out = b""
    for f in sorted(workdir.rglob("*")):
        if f.is_file() and (f.suffix in (".jsonl", ".json", ".log")):
            out += f.read_bytes()
    return out


def _content(with_secrets: bool) -> Content:
    c = Content(**CANARIES)
    if with_secrets:
        api, bearer, pw = (v[0] for v in SECRETS.values())
        c.prompt += f" my key is {api} and {pw}"
        c.system += f" use header Authorization: {bearer}"
        c.completion += f" (token for you: {api})"
        c.tool_arg += f" {pw}"
        c.tool_result += f" {bearer}"
        c.command_prompt += f" {api}"
        c.extra = {"api_key_field": api, "auth": bearer}
    return c


def _run(tmp_path: Path, name: str, with_secrets: bool, **overrides: object) -> bytes:
    with collector(tmp_path / name / "col") as col:
        tel = make_telemetry(col.grpc_endpoint, tmp_path / name, **overrides)
        for i in range(SESSIONS):
            for ev in session_events(f"priv-{name}-{i}", _content(with_secrets)):
                tel.manager.observe_event(ev)
        report = tel.shutdown()
        assert report.completed, report
        wait_collected(col.file_path, SESSIONS * 6, SESSIONS * 10)
        return _raw_output(tmp_path / name / "col")


def test_default_capture_leaks_no_content(otel_env: dict[str, str], tmp_path: Path) -> None:
    raw = _run(tmp_path, "default", with_secrets=True)
    found = {k: raw.count(v.encode()) for k, v in CANARIES.items()}
    found |= {k: raw.count(v[1].encode()) for k, v in SECRETS.items()}
    record_figures("privacy_default", bytes_scanned=len(raw), canary_hits=found)
    assert b"priv-default-0" in raw  # the output is really there
    assert not any(found.values()), {k: n for k, n in found.items() if n}


def test_capture_on_still_scrubs_secrets(otel_env: dict[str, str], tmp_path: Path) -> None:
    raw = _run(tmp_path, "capture", with_secrets=True, capture_content="SPAN_AND_EVENT")
    content_hits = {k: raw.count(v.encode()) for k, v in CANARIES.items()}
    secret_hits = {k: raw.count(v[1].encode()) for k, v in SECRETS.items()}
    record_figures("privacy_capture_on", bytes_scanned=len(raw), content_hits=content_hits,
                   secret_hits=secret_hits, redacted_markers=raw.count(b"[REDACTED]"))
    assert all(content_hits.values()), content_hits  # captured content is really there
    assert not any(secret_hits.values()), secret_hits
