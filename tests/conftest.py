"""Fixtures for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_VAR = "LLMGINE_OTEL_BUFFER_DIR"


@pytest.fixture(autouse=True)
def _hermetic_disk_buffer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test leaves a disk buffer in the working directory, where a later test's process
    would take its files over and resend them to that test's Collector. (Not through
    ``monkeypatch``: requesting it here would change the teardown order of other tests'
    fixtures.)"""
    if _VAR in os.environ:
        yield
        return
    os.environ[_VAR] = str(tmp_path_factory.mktemp("buffer"))
    try:
        yield
    finally:
        os.environ.pop(_VAR, None)


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of a fast path itself: on, whatever LLMGINE_OTEL_PUBLIC_PATH says (CI runs
    the core suites a second time with the public path forced)."""
    monkeypatch.delenv("LLMGINE_OTEL_PUBLIC_PATH", raising=False)
