"""Zero-code setup: ``opentelemetry-instrument python app.py`` with this package installed.

``LLMgineDistro`` makes this package's configurator the one ``opentelemetry-instrument``
loads (unless ``OTEL_PYTHON_CONFIGURATOR`` names another), so no other configurator also
builds providers and exporters (no double export). ``LLMgineConfigurator`` then calls
:func:`llmgine_otel.configure` (providers, pipeline, translator, all from the environment),
and the ``llmgine`` instrumentor entry point wires it to llmgine's ``MessageBus``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.sdk._configuration import _BaseConfigurator

__all__ = ["ENTRY_POINT_NAME", "LLMgineConfigurator", "LLMgineDistro"]

ENTRY_POINT_NAME = "llmgine_otel"
"""Our name in the ``opentelemetry_distro`` and ``opentelemetry_configurator`` groups."""


class LLMgineConfigurator(_BaseConfigurator):
    """Sets up telemetry once with :func:`llmgine_otel.configure` (env-driven)."""

    def _configure(self, **kwargs: Any) -> None:
        from llmgine_otel.telemetry import configure, get_telemetry

        if get_telemetry() is None:
            configure()


class LLMgineDistro(BaseDistro):  # type: ignore[misc]
    """Selects :class:`LLMgineConfigurator` unless the user chose a configurator."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, ENTRY_POINT_NAME)
