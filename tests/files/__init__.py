"""Tests of local telemetry files: codec, writer, exporters, reader, console summary, replay."""
