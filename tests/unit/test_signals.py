"""Where the stop-signal handler is installed (the behaviour on a real signal is tested with
real processes in tests/reliability/test_signals.py)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llmgine_otel import configure, signals


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_installed_only_where_the_default_is_in_place(saved_handlers: None) -> None:
    def app_handler(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    assert signals.install_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) is signals._on_signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # KeyboardInterrupt kept
    signal.signal(signal.SIGTERM, app_handler)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    assert signals.install_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) is app_handler  # the application's, left alone
    assert signal.getsignal(signal.SIGINT) is signals._on_signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signals.install_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_switched_off_installs_nothing(saved_handlers: None, tmp_path: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tel = configure(set_global=False, console=False, output_dir=tmp_path,
                    flush_on_signal=False)
    try:
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        tel.shutdown(timeout_s=2)


def test_watched_until_shut_down(saved_handlers: None, tmp_path: Any) -> None:
    tel = configure(set_global=False, console=False, output_dir=tmp_path)
    assert tel in signals._watched
    tel.shutdown(timeout_s=2)
    assert tel not in signals._watched and tel.is_shut_down


def test_off_the_main_thread_says_so_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                          caplog: pytest.LogCaptureFixture,
                                          saved_handlers: None) -> None:
    monkeypatch.setattr(signals, "_warned_thread", False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    made: list[Any] = []

    def run() -> None:
        made.append(configure(set_global=False, console=False, output_dir=tmp_path))
        made.append(signals.install_signal_handlers())

    with caplog.at_level(logging.WARNING, logger="llmgine_otel"):
        for _ in range(2):
            t = threading.Thread(target=run)
            t.start()
            t.join(10)
    try:
        warnings = [r for r in caplog.records if "main thread" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert made[1] is False and made[3] is False
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # nothing installed
        assert made[0] in signals._watched  # flushed if a main-thread install happens later
    finally:
        for tel in made[::2]:
            tel.shutdown(timeout_s=2)
