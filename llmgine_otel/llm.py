"""``llm_call``: one LLM request as an ``LLMCallStartedEvent`` / ``LLMCallFinishedEvent`` pair.

llmgine 0.0.1 calls litellm directly and publishes nothing about it; wrap the call::

    async with llm_call(bus, model="gpt-4o-mini", provider="openai",
                        session_id=cmd.session_id, messages=msgs) as call:
        response = await litellm.acompletion(model=..., messages=msgs)
        call.record_response(response)

While the block runs (and while a wrapped stream's chunks are pulled) the LLM span is the
current span, so spans other instrumentation makes for the request (httpx, aiohttp, the
provider SDK) are its children. The events go through :mod:`llmgine_otel.publish`: translated
at once, then published on ``target`` (default: the bus of the command this code runs for).
litellm calls need none of this: :mod:`llmgine_otel.litellm_calls` wraps them.

It also works as a plain ``with`` block and as a decorator (the decorated function's
return value is recorded, or wrapped when it is a stream). Streams: iterate
``call.wrap_stream(stream)``; the span ends when the stream is exhausted, closed
(``aclose``/``close``, or leaving the ``llm_call`` block after a ``break``), or, as a safety
net, when a stream handed out of the block is garbage collected unfinished (status ERROR,
``error.type`` = ``stream_abandoned``).
An exception in the block ends the span with ERROR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from llmgine_otel.events import LLMCallFinishedEvent, LLMCallStartedEvent, LLMStreamChunkEvent
from llmgine_otel.propagation import inject_context, session_parent_span
from llmgine_otel.publish import aemit, emit, translator_for

__all__ = ["LLMCall", "LLMStream", "llm_call"]

_log = logging.getLogger("llmgine_otel")
_START_FIELDS = frozenset(f.name for f in dataclasses.fields(LLMCallStartedEvent))
_ALIASES = {"n": "choice_count", "stop": "stop_sequences", "max_completion_tokens": "max_tokens"}
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens", "reasoning_output_tokens")


def llm_call(target: Any = None, *, model: str, provider: str, session_id: str,
             command_id: str | None = None, operation: str = "chat",
             messages: list[Any] | None = None, chunk_events: bool = False,
             **request_params: Any) -> LLMCall:
    """An :class:`LLMCall` publishing to ``target``: a MessageBus (``bus.publish``), any
    ``publish(event)`` callable (sync or async), or None (the configured telemetry).

    ``request_params`` are the request's settings (temperature, max_tokens, top_p, seed,
    stop, n, stream, server_address, ...); unknown ones are ignored. ``chunk_events``
    publishes one ``LLMStreamChunkEvent`` per streamed chunk (default: only counted).
    """
    return LLMCall(target, model=model, provider=provider, session_id=session_id,
                   command_id=command_id, operation=operation, messages=messages,
                   chunk_events=chunk_events, **request_params)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a property that raises
        return None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _first_int(obj: Any, *paths: str) -> int | None:
    for path in paths:
        v: Any = obj
        for part in path.split("."):
            v = _get(v, part)
        n = _int(v)
        if n is not None:
            return n
    return None


def _plain(obj: Any) -> Any:
    """A pydantic/dataclass/dict message as plain dicts and lists (for content capture)."""
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return _plain(dump())
        except Exception:  # noqa: BLE001
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    return str(obj)


class LLMCall:
    """One LLM request; see :func:`llm_call`. Single use as a block; reusable as decorator."""

    def __init__(self, target: Any = None, *, model: str, provider: str, session_id: str,
                 command_id: str | None = None, operation: str = "chat",
                 messages: list[Any] | None = None, chunk_events: bool = False,
                 **request_params: Any) -> None:
        self._target = target
        self._init = dict(model=model, provider=provider, session_id=session_id,
                          command_id=command_id, operation=operation, messages=messages,
                          chunk_events=chunk_events, **request_params)
        self.session_id = session_id
        self.chunk_events = chunk_events
        params: dict[str, Any] = {}
        for k, v in request_params.items():
            k = _ALIASES.get(k, k)
            if k == "stop_sequences" and isinstance(v, str):
                v = [v]
            if k in _START_FIELDS and v is not None:
                params[k] = v
        self.started_event = LLMCallStartedEvent(
            session_id=session_id, model=model, provider=provider, operation=operation,
            command_id=command_id, messages=messages, **params)
        self.call_id = self.started_event.call_id
        self.finished_event: LLMCallFinishedEvent | None = None
        self._result: dict[str, Any] = {}
        self._t0 = 0.0
        self._first_chunk: float | None = None
        self.chunks = 0
        self._started = False
        self._in_block = False
        self._stream: weakref.ReferenceType[LLMStream] | None = None
        self.server_known = bool(request_params.get("server_address"))
        """The request named where it goes (else the response may say: record_server)."""
        self.span: trace.Span | None = None
        """The LLM span, once started (None when no telemetry is configured)."""
        self._token: Any = None

    # -- recording -----------------------------------------------------------------------------
    def record_response(self, response: Any) -> None:
        """Take id, model, finish reasons, usage and output messages from an OpenAI- or
        litellm-shaped response (object or dict). Missing fields are skipped."""
        r = self._result
        rid, rmodel = _get(response, "id"), _get(response, "model")
        if isinstance(rid, str) and rid:
            r["response_id"] = rid
        if isinstance(rmodel, str) and rmodel:
            r["response_model"] = rmodel
        choices = _get(response, "choices")
        if isinstance(choices, list | tuple) and choices:
            reasons = [fr for c in choices if isinstance(fr := _get(c, "finish_reason"), str)]
            if reasons:
                r["finish_reasons"] = reasons
            outputs = []
            for c in choices:
                msg = _plain(_get(c, "message"))
                if isinstance(msg, dict):
                    fr = _get(c, "finish_reason")
                    if isinstance(fr, str):
                        msg["finish_reason"] = fr
                    outputs.append(msg)
            if outputs:
                r["output_messages"] = outputs
        self._usage_from(_get(response, "usage"))

    def _usage_from(self, usage: Any) -> None:
        if usage is None:
            return
        self.record_usage(
            input_tokens=_first_int(usage, "prompt_tokens", "input_tokens"),
            output_tokens=_first_int(usage, "completion_tokens", "output_tokens"),
            cache_read_input_tokens=_first_int(
                usage, "prompt_tokens_details.cached_tokens", "input_tokens_details.cached_tokens",
                "cache_read_input_tokens"),
            cache_creation_input_tokens=_first_int(
                usage, "cache_creation_input_tokens",
                "prompt_tokens_details.cache_creation_tokens"),
            reasoning_output_tokens=_first_int(
                usage, "completion_tokens_details.reasoning_tokens",
                "output_tokens_details.reasoning_tokens", "reasoning_tokens"))

    def record_server(self, address: str | None, port: int | None) -> None:
        """Where the request really went (e.g. from the response), if the start guessed."""
        if isinstance(address, str) and address:
            self._result["server_address"] = address
            if isinstance(port, int):
                self._result["server_port"] = port

    def record_usage(self, input_tokens: int | None = None, output_tokens: int | None = None,
                     cache_read_input_tokens: int | None = None,
                     cache_creation_input_tokens: int | None = None,
                     reasoning_output_tokens: int | None = None) -> None:
        """Set token counts (None leaves a count as it is)."""
        values = (input_tokens, output_tokens, cache_read_input_tokens,
                  cache_creation_input_tokens, reasoning_output_tokens)
        for name, v in zip(_USAGE_FIELDS, values, strict=True):
            n = _int(v)
            if n is not None:
                self._result[name] = n

    @property
    def finished(self) -> bool:
        return self.finished_event is not None

    # -- events --------------------------------------------------------------------------------
    def _start_event(self) -> LLMCallStartedEvent:
        if self._started:
            raise RuntimeError("an LLMCall is single use; call llm_call(...) again")
        self._started = True
        self._t0 = time.monotonic()
        ev = self.started_event
        handler = translator_for()
        span = session_parent_span(getattr(handler, "table", None), self.session_id)
        if span is not None:
            inject_context(ev.metadata, span)
        return ev

    def _took_span(self, entry: Any) -> None:
        self.span = getattr(entry, "span", None)

    def start(self) -> None:
        """Publish the start from sync code (any thread); the span exists afterwards."""
        self._took_span(emit(self._start_event(), self._target))

    async def astart(self) -> None:
        """Publish the start from async code; the span exists afterwards."""
        self._took_span(await aemit(self._start_event(), self._target))

    def _end_event(self, error: BaseException | str | None = None,
                   error_type: str | None = None) -> LLMCallFinishedEvent | None:
        if self.finished_event is not None or not self._started:
            return None
        r = self._result
        if self.chunks:
            r["chunk_count"] = self.chunks
            if self._first_chunk is not None:
                r["time_to_first_chunk"] = self._first_chunk - self._t0
        ev = LLMCallFinishedEvent(session_id=self.session_id, call_id=self.call_id,
                                  error=error, error_type=error_type, **r)
        self.finished_event = ev
        return ev

    def end(self, error: BaseException | str | None = None, error_type: str | None = None
            ) -> None:
        """Publish the end (once; later calls do nothing) from sync code."""
        ev = self._end_event(error, error_type)
        if ev is not None:
            emit(ev, self._target)

    async def aend(self, error: BaseException | str | None = None,
                   error_type: str | None = None) -> None:
        """Publish the end (once) from async code."""
        ev = self._end_event(error, error_type)
        if ev is not None:
            await aemit(ev, self._target)

    def _on_chunk(self, chunk: Any) -> None:
        self.chunks += 1
        if self._first_chunk is None:
            self._first_chunk = time.monotonic()
        r = self._result
        if "response_id" not in r and isinstance(cid := _get(chunk, "id"), str) and cid:
            r["response_id"] = cid
        if "response_model" not in r and isinstance(m := _get(chunk, "model"), str) and m:
            r["response_model"] = m
        choices = _get(chunk, "choices")
        if isinstance(choices, list | tuple):
            reasons = [fr for c in choices if isinstance(fr := _get(c, "finish_reason"), str)]
            if reasons:
                r["finish_reasons"] = reasons
        self._usage_from(_get(chunk, "usage"))

    def _chunk_event(self) -> LLMStreamChunkEvent:
        return LLMStreamChunkEvent(session_id=self.session_id, call_id=self.call_id,
                                   index=self.chunks - 1)

    # -- the current span ----------------------------------------------------------------------
    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the LLM span the current span (of this thread or task) inside the block."""
        if self.span is None:
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def _activate(self) -> None:
        if self.span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def _deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)

    # -- context managers ----------------------------------------------------------------------
    async def __aenter__(self) -> LLMCall:
        await self.astart()
        self._in_block = True
        self._activate()
        return self

    def _leave(self, exc: BaseException | None) -> tuple[Any, Any]:
        """Leaving the block: (end to publish, or a stream to close early, or neither).

        A stream handed on unread ends the span itself; one broken out of is closed here."""
        self._in_block = False
        self._deactivate()
        stream = self._stream() if self._stream is not None else None
        if exc is not None:
            if stream is not None:
                stream._self_done = True
                stream._self_finalizer.detach()
            return (exc,), None
        if stream is not None and not stream._self_done:
            return None, stream if stream._self_iterated else None
        return (None,), None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        end, stream = self._leave(exc)
        if stream is not None:
            await stream.aclose()  # a break inside the block: closed early
        elif end is not None:
            await self.aend(error=end[0])

    def __enter__(self) -> LLMCall:
        self.start()
        self._in_block = True
        self._activate()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        end, stream = self._leave(exc)
        if stream is not None:
            stream.close()
        elif end is not None:
            self.end(error=end[0])

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Use as a decorator: each call of ``fn`` is one LLM call (a fresh LLMCall)."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh() as call:
                    return call._adopt(await fn(*args, **kwargs))
            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as call:
                return call._adopt(fn(*args, **kwargs))
        return wrapper

    def _fresh(self) -> LLMCall:
        return LLMCall(self._target, **self._init)

    def _adopt(self, result: Any) -> Any:
        """A decorated function's result: a stream is wrapped, a response recorded."""
        if hasattr(result, "__anext__") or (hasattr(result, "__next__")
                                            and not isinstance(result, Mapping)):
            return self.wrap_stream(result)
        try:
            self.record_response(result)
        except Exception:  # noqa: BLE001
            pass
        return result

    # -- streaming -----------------------------------------------------------------------------
    def wrap_stream(self, stream: Any) -> LLMStream:
        """Iterate this instead of ``stream`` (sync or async); it ends the span. It is a
        transparent proxy: attributes, methods and ``isinstance`` checks reach ``stream``."""
        wrapped = LLMStream(self, stream)
        self._stream = weakref.ref(wrapped)
        return wrapped


def _attach(span: trace.Span | None) -> Any:
    """Make ``span`` current (the token to detach), or None when there is no span."""
    return None if span is None else otel_context.attach(trace.set_span_in_context(span))


def _abandoned(call: LLMCall) -> None:
    """Finalizer of an unfinished stream: end its span with ``stream_abandoned``, unless
    the ``llm_call`` block is still open (a ``break`` dropped it: the block ends the span)."""
    if call._in_block:
        return
    try:
        call.end(error="stream abandoned before it was exhausted or closed",
                 error_type="stream_abandoned")
    except Exception:  # noqa: BLE001 - never raise from a finalizer
        pass


class LLMStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A streamed response that ends its LLM span when exhausted, closed or abandoned, with
    the span current while each chunk is pulled. Everything else reaches the source
    (``wrapt.ObjectProxy``): its attributes, methods and class for ``isinstance``."""

    def __init__(self, call: LLMCall, source: Any) -> None:
        super().__init__(source)
        self._self_call = call
        self._self_it: Any = None
        self._self_ait: Any = None
        self._self_done = False
        self._self_iterated = False
        # Holds the call, never this stream: collected as soon as the stream is dropped.
        self._self_finalizer = weakref.finalize(self, _abandoned, call)
        self._self_finalizer.atexit = False

    @property
    def call(self) -> LLMCall:
        return self._self_call  # type: ignore[no-any-return]

    def _finish(self) -> None:
        self._self_done = True
        self._self_finalizer.detach()

    # async ----------------------------------------------------------------------------------
    def __aiter__(self) -> LLMStream:
        return self

    async def __anext__(self) -> Any:
        call: LLMCall = self._self_call
        if self._self_done:
            raise StopAsyncIteration
        if self._self_ait is None and self._self_it is None:
            src = self.__wrapped__
            if hasattr(src, "__anext__"):
                self._self_ait = src
            elif hasattr(src, "__aiter__"):
                self._self_ait = src.__aiter__()
            else:
                self._self_it = iter(src)
        self._self_iterated = True
        try:
            # call.current() inlined: this runs once per chunk, and the generator-based
            # context manager cost three times the attach/detach itself.
            token = _attach(call.span)
            try:
                if self._self_ait is not None:
                    chunk = await self._self_ait.__anext__()
                else:
                    try:
                        chunk = next(self._self_it)
                    except StopIteration:
                        raise StopAsyncIteration from None
            finally:
                if token is not None:
                    otel_context.detach(token)
        except StopAsyncIteration:
            self._finish()
            await call.aend()
            raise
        except BaseException as exc:
            self._finish()
            await call.aend(error=exc)
            raise
        call._on_chunk(chunk)
        if call.chunk_events:
            await aemit(call._chunk_event(), call._target)
        return chunk

    async def aclose(self) -> None:
        """Stop early: end the span (OK) and close the source."""
        call: LLMCall = self._self_call
        if not self._self_done:
            self._finish()
            await call.aend()
        src = self._self_ait if self._self_ait is not None else self.__wrapped__
        for closer in ("aclose", "close"):
            fn = getattr(src, closer, None)
            if callable(fn):
                try:
                    result = fn()
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # noqa: BLE001
                    pass
                break

    async def __aenter__(self) -> LLMStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # sync -----------------------------------------------------------------------------------
    def __iter__(self) -> LLMStream:
        return self

    def __next__(self) -> Any:
        call: LLMCall = self._self_call
        if self._self_done:
            raise StopIteration
        if self._self_it is None:
            self._self_it = iter(self.__wrapped__)
        self._self_iterated = True
        try:
            token = _attach(call.span)  # call.current() inlined, as in __anext__
            try:
                chunk = next(self._self_it)
            finally:
                if token is not None:
                    otel_context.detach(token)
        except StopIteration:
            self._finish()
            call.end()
            raise
        except BaseException as exc:
            self._finish()
            call.end(error=exc)
            raise
        call._on_chunk(chunk)
        if call.chunk_events:
            emit(call._chunk_event(), call._target)
        return chunk

    def close(self) -> None:
        """Stop early: end the span (OK) and close the source."""
        call: LLMCall = self._self_call
        if not self._self_done:
            self._finish()
            call.end()
        src = self._self_it if self._self_it is not None else self.__wrapped__
        fn = getattr(src, "close", None)
        if callable(fn):
            try:
                result = fn()
                if inspect.iscoroutine(result):
                    result.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> LLMStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
