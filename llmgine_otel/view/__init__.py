"""See llmgine traces without a backend: group OTLP-JSON rows into traces and draw them."""
