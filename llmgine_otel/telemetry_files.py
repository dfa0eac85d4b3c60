"""Telemetry files on disk: which files a folder holds (current and rotated, plain, gzip or
zstd), their OTLP-JSON lines read one object at a time (a bad line is reported, not fatal), and
``read_telemetry`` for viewers (rows from ``telemetry_rows``)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from llmgine_otel.telemetry_rows import SIGNAL_KEYS, LogRow, SpanRow, rows_from_object, snake_key

__all__ = ["iter_objects", "read_telemetry", "rotation_stamp", "telemetry_files"]

_log = logging.getLogger(__name__)
JsonObj = dict[str, Any]
_TEXT_SUFFIXES = (".jsonl", ".json")
_COMPRESSED_SUFFIXES = (".gz", ".zst")
_ROTATED_TS = re.compile(r"-(\d{4}-?\d\d-?\d\dT\d\d-?\d\d-?\d\d(?:\.\d+)?Z?)$")
_MAX_PROBLEMS_PER_FILE = 20
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstandard() -> Any:
    """The ``zstandard`` module, or None when it is not installed."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def _is_telemetry_name(name: str) -> bool:
    if name.startswith("."):
        return False
    for comp in ("", *_COMPRESSED_SUFFIXES):
        if comp and not name.endswith(comp):
            continue
        base = name[: len(name) - len(comp)] if comp else name
        if base.endswith(_TEXT_SUFFIXES):
            return True
    return False


def _strip_suffixes(name: str) -> str:
    """``telemetry-2026...jsonl.gz`` -> ``telemetry-2026...``."""
    for comp in _COMPRESSED_SUFFIXES:
        name = name.removesuffix(comp)
    for text in _TEXT_SUFFIXES:
        name = name.removesuffix(text)
    return name


def rotation_stamp(name: str) -> str | None:
    """The digits of a rotated file's UTC timestamp (``name-<stamp>.jsonl[.gz]``), else None."""
    m = _ROTATED_TS.search(_strip_suffixes(name))
    return re.sub(r"\D", "", m.group(1)).ljust(20, "0") if m else None


def telemetry_files(path: str | Path) -> list[Path]:
    """A file as itself; a folder's telemetry files, rotated ones oldest first, then current ones.

    Raises FileNotFoundError when the path does not exist. A rotated file whose compressed copy is
    also there (compression interrupted) is listed once, as the uncompressed file.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or directory")
    files = [f for f in p.iterdir() if _is_telemetry_name(f.name) and f.is_file()]
    names = {f.name for f in files}
    files = [
        f
        for f in files
        if not (f.name.endswith(_COMPRESSED_SUFFIXES) and f.name[: f.name.rfind(".")] in names)
    ]

    def key(f: Path) -> tuple[int, str, float, str]:
        stamp = rotation_stamp(f.name)
        if stamp is not None:
            return (0, stamp, 0.0, f.name)
        try:
            mtime = f.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (1, "", mtime, f.name)

    return sorted(files, key=key)


def _open_lines(path: Path) -> io.BufferedIOBase:
    """A binary stream of the file's (decompressed) bytes."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        zstd = _zstandard()
        if zstd is None:
            raise _Unreadable("zstd-compressed; install the 'zstandard' package to read it")
        raw = open(path, "rb")  # noqa: SIM115 - handed to the returned stream
        if raw.read(4) != _ZSTD_MAGIC:  # Collector's legacy framing: 4-byte size + zstd frame
            raw.seek(0)
            return io.BufferedReader(_SizePrefixedZstd(raw, zstd))
        raw.seek(0)
        reader = zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader)
    return open(path, "rb")


class _Unreadable(Exception):
    """A file that cannot be read at all, with the reason to report."""


class _SizePrefixedZstd(io.RawIOBase):
    """Lines from the Collector's legacy ``compression: zstd`` files (size-prefixed frames)."""

    def __init__(self, raw: IO[bytes], zstd: Any) -> None:
        self._raw = raw
        self._dctx = zstd.ZstdDecompressor()
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            head = self._raw.read(4)
            if not head:
                return 0
            if len(head) < 4:
                raise EOFError("compressed stream ends early")
            size = int.from_bytes(head, "big")
            frame = self._raw.read(size)
            if len(frame) < size:
                raise EOFError("compressed stream ends early")
            data = self._dctx.decompressobj().decompress(frame)
            self._buf = data if data.endswith(b"\n") else data + b"\n"
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Problems:
    """Reports problems of one file, at most a few lines of them."""

    def __init__(self, name: str, sink: Callable[[str], None]) -> None:
        self.name = name
        self.sink = sink
        self.count = 0

    def __call__(self, msg: str, lineno: int | None = None) -> None:
        self.count += 1
        if self.count <= _MAX_PROBLEMS_PER_FILE:
            where = f"{self.name}:{lineno}" if lineno is not None else self.name
            self.sink(f"{where}: {msg}")

    def finish(self) -> None:
        extra = self.count - _MAX_PROBLEMS_PER_FILE
        if extra > 0:
            self.sink(f"{self.name}: ... and {extra} more problem{'s' if extra > 1 else ''}")


def _default_problem(msg: str) -> None:
    print(f"llmgine-otel: {msg}", file=sys.stderr)


def iter_objects(
    path: str | Path, *, on_problem: Callable[[str], None] = _default_problem
) -> Iterator[JsonObj]:
    """Each OTLP-JSON object (one per line) of a file or folder; bad lines reported and skipped."""
    try:
        files = telemetry_files(path)
    except OSError as exc:
        on_problem(str(exc))
        return
    for f in files:
        for _lineno, obj in _iter_file(f, _Problems(str(f), on_problem)):
            yield obj


def _iter_file(path: Path, problem: _Problems) -> Iterator[tuple[int, JsonObj]]:
    """(line number, object) for each OTLP-JSON line of one file; problems go to ``problem``."""
    lineno = 0
    try:
        with _open_lines(path) as stream:
            for lineno, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    if raw.endswith(b"\n"):
                        problem("not valid JSON, skipped", lineno)
                    else:
                        problem("not valid JSON (truncated write?), skipped", lineno)
                    continue
                if not isinstance(obj, dict) or not any(
                    k in obj or snake_key(k) in obj for k in SIGNAL_KEYS
                ):
                    problem(
                        "not OTLP JSON (no resourceSpans/resourceLogs/resourceMetrics), skipped",
                        lineno,
                    )
                    continue
                yield lineno, obj
    except _Unreadable as exc:
        problem(f"{exc}, skipped")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problem(
            f"compressed data ends early or is corrupt ({exc}), rest of file skipped", lineno + 1
        )
    except OSError as exc:
        if lineno:
            problem(f"read error ({exc.strerror or exc}), rest of file skipped", lineno + 1)
        else:
            problem(f"cannot read ({exc.strerror or exc}), skipped")
    except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError and the like
        problem(f"cannot decode ({type(exc).__name__}: {exc}), rest of file skipped", lineno + 1)
    finally:
        problem.finish()


def read_telemetry(
    path: str | Path, *, on_problem: Callable[[str], None] = _default_problem
) -> Iterator[SpanRow | LogRow]:
    """Stream the span and log rows of a telemetry file or folder, line by line.

    Anything unreadable is reported through ``on_problem`` as one line naming file and line
    number (at most 20 per file, then a count) and skipped; the rest is still yielded.
    """
    try:
        files = telemetry_files(path)
    except OSError as exc:
        on_problem(str(exc))
        return
    for f in files:
        problem = _Problems(str(f), on_problem)
        for lineno, obj in _iter_file(f, problem):
            try:
                rows = rows_from_object(obj)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                problem(f"malformed OTLP JSON ({type(exc).__name__}: {exc}), skipped", lineno)
                continue
            yield from rows
