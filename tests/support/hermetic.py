"""Hermetic environments for the processes and settings tests start."""

from __future__ import annotations


def left_out(key: str) -> bool:
    """Is ``key`` an environment setting a hermetic test environment leaves out? All
    OpenTelemetry and package settings, except the switch to the public API path, which CI
    sets for the suites' second run (fast_paths.ENV)."""
    return key.startswith(("OTEL_", "LLMGINE_OBSERVABILITY_", "LLMGINE_OTEL_")) and \
        key != "LLMGINE_OTEL_PUBLIC_PATH"
