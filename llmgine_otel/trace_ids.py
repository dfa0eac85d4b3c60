"""Trace and span ids independent of the application's ``random``."""

from __future__ import annotations

import os
import random
import weakref

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID

__all__ = ["PrivateIdGenerator"]


class PrivateIdGenerator(IdGenerator):
    """Random trace/span ids from a private generator seeded by the OS.

    The SDK's default draws from the global ``random``: an application that calls
    ``random.seed(n)`` (tests, simulations) would give every run the same trace ids. This one
    is independent of that, and reseeded in forked children so no two processes share ids.
    """

    def __init__(self) -> None:
        self._rand = random.Random()  # seeded from os.urandom
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def reseed() -> None:
                gen = ref()
                if gen is not None:
                    gen._rand.seed()

            os.register_at_fork(after_in_child=reseed)

    def generate_span_id(self) -> int:
        span_id = self._rand.getrandbits(64)
        while span_id == INVALID_SPAN_ID:
            span_id = self._rand.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._rand.getrandbits(128)
        while trace_id == INVALID_TRACE_ID:
            trace_id = self._rand.getrandbits(128)
        return trace_id
