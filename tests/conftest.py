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
