"""Fixtures for every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _hermetic_disk_buffer(tmp_path_factory: pytest.TempPathFactory,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No test leaves a disk buffer in the working directory, where a later test's process
    would take its files over and resend them to that test's Collector."""
    if "LLMGINE_OTEL_BUFFER_DIR" not in os.environ:
        monkeypatch.setenv("LLMGINE_OTEL_BUFFER_DIR", str(tmp_path_factory.mktemp("buffer")))
