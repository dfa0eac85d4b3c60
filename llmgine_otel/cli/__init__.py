"""The `llmgine-otel` command line: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)`` which adds its sub-command(s) and sets
# ``func`` (a callable taking the parsed args and returning an exit code) as a default.
_COMMAND_MODULES: tuple[str, ...] = (
    "llmgine_otel.cli.view",
    "llmgine_otel.cli.tail",
    "llmgine_otel.cli.doctor",
    "llmgine_otel.cli.collector",
    "llmgine_otel.cli.replay",
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command whose module is present."""
    parser = argparse.ArgumentParser(
        prog="llmgine-otel",
        description="Look at, ship and debug llmgine OpenTelemetry telemetry.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the sub-command is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmgine-otel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
