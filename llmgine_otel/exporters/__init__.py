"""Exporters: local OTLP-JSON files and a one-line console summary."""
