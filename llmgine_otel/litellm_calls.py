"""litellm calls as LLM call events and GenAI client spans, with no code in the app.

``instrument()`` wraps (wrapt) ``completion``, ``acompletion``, ``embedding`` and
``aembedding`` on both ``litellm`` and ``litellm.main`` (so ``from litellm import completion``
done after instrumenting is covered too), as soon as litellm is imported;
``uninstrument()`` puts the originals back. Each
call becomes an :class:`~llmgine_otel.llm.LLMCall`: its events are published on the bus of
the command that made it, and its span is current while the call runs and while a stream's
chunks are pulled, so HTTP client spans (httpx, aiohttp, the provider SDK's) are its children.

One call, one span of ours:

- ``acompletion`` runs ``completion`` in a worker thread with a copy of the caller's context:
  a context variable set by the outer wrapper makes the inner one pass straight through;
- when a GenAI inference span is already current (another instrumentation wrapped litellm
  outside ours, or the app's own ``llm_call`` block surrounds the call), ours steps aside;
- ``suppress_instrumentation()`` is honoured.

The rule for other instrumentations is in docs/zero-code.md ("One span per LLM call").
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from wrapt import register_post_import_hook, wrap_function_wrapper

from llmgine_otel.llm import LLMCall, _get
from llmgine_otel.publish import current_scope

__all__ = ["instrument", "uninstrument"]

_log = logging.getLogger("llmgine_otel")
# (function, operation, async) on each module below.
_FUNCTIONS = (("completion", "chat", False), ("acompletion", "chat", True),
              ("embedding", "embeddings", False), ("aembedding", "embeddings", True))
_MODULES = ("litellm", "litellm.main")
_INFERENCE = frozenset({"chat", "text_completion", "embeddings", "generate_content"})
_inside: ContextVar[bool] = ContextVar("llmgine_otel_in_litellm_call", default=False)
_wrapped: list[tuple[Any, str]] = []
_hooked = False
_wanted = False
_warned = False

# litellm's provider names -> gen_ai.provider.name (semantic conventions v1.41 members);
# any other provider keeps litellm's name.
PROVIDERS = {
    "openai": "openai", "text-completion-openai": "openai", "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai", "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic", "bedrock": "aws.bedrock", "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai", "gemini": "gcp.gemini", "cohere": "cohere",
    "cohere_chat": "cohere", "groq": "groq", "mistral": "mistral_ai", "deepseek": "deepseek",
    "xai": "x_ai", "perplexity": "perplexity", "watsonx": "ibm.watsonx.ai",
}
# Where a provider's API lives when the call names no api_base (server.address/port).
_DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
    "groq": "https://api.groq.com/openai/v1", "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com", "xai": "https://api.x.ai/v1",
    "cohere": "https://api.cohere.ai", "perplexity": "https://api.perplexity.ai",
    "gemini": "https://generativelanguage.googleapis.com", "ollama": "http://localhost:11434",
}
# Request settings litellm takes as keyword arguments (LLMCall maps the aliases).
_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed",
           "stop", "n", "frequency_penalty", "presence_penalty", "stream")


def instrument() -> None:
    """Wrap litellm's call functions now, or when litellm is first imported (importing it
    costs seconds; an app that never does should not pay that at start-up)."""
    global _hooked, _wanted
    _wanted = True
    if not _hooked:
        _hooked = True
        register_post_import_hook(_on_import, "litellm")  # runs now if already imported
    elif "litellm" in sys.modules:  # instrumented again after uninstrument()
        _on_import(sys.modules["litellm"])


def uninstrument() -> None:
    """Put litellm's original functions back (and do nothing if it is imported later)."""
    global _wanted
    _wanted = False
    while _wrapped:
        module, name = _wrapped.pop()
        unwrap(module, name)


def _on_import(_: Any) -> None:
    if not _wanted or _wrapped:
        return
    try:
        modules = [importlib.import_module(m) for m in _MODULES]
        for module in modules:
            for name, operation, is_async in _FUNCTIONS:
                if callable(getattr(module, name, None)):
                    wrapper = _async_wrapper(operation) if is_async else _sync_wrapper(operation)
                    wrap_function_wrapper(module, name, wrapper)
                    _wrapped.append((module, name))
    except Exception:  # noqa: BLE001 - an unexpected litellm layout: leave it untraced
        _log.warning("llmgine_otel could not instrument litellm", exc_info=True)


def _skip() -> bool:
    """Pass the call through untouched: ours already runs (litellm's worker thread), it is
    suppressed, or another GenAI inference span is current (step aside)."""
    if _inside.get() or not is_instrumentation_enabled():
        return True
    attributes = getattr(trace.get_current_span(), "attributes", None)
    return attributes is not None and attributes.get("gen_ai.operation.name") in _INFERENCE


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning("llmgine_otel: tracing a litellm call failed; the call itself went ahead "
                     "(further failures are silent)", exc_info=True)


def _sync_wrapper(operation: str) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        if _skip():
            return wrapped(*args, **kwargs)
        try:
            call = _new_call(operation, args, kwargs)
            call.start()
        except Exception:  # noqa: BLE001 - never break the app's call
            _warn_once()
            return wrapped(*args, **kwargs)
        token = _inside.set(True)
        try:
            with call.current():
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(error=exc)
            raise
        finally:
            _inside.reset(token)
        return _finish(call, result, kwargs)

    return wrapper


def _async_wrapper(operation: str) -> Any:
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        if _skip():
            return await wrapped(*args, **kwargs)
        try:
            call = _new_call(operation, args, kwargs)
            await call.astart()
        except Exception:  # noqa: BLE001
            _warn_once()
            return await wrapped(*args, **kwargs)
        token = _inside.set(True)
        try:
            with call.current():
                result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            await call.aend(error=exc)
            raise
        finally:
            _inside.reset(token)
        if kwargs.get("stream"):
            return _finish(call, result, kwargs)
        _record(call, result)
        await call.aend()
        return result

    return wrapper


def _finish(call: LLMCall, result: Any, kwargs: dict[str, Any]) -> Any:
    """A stream is handed back wrapped (it ends the span); a response ends it now."""
    if kwargs.get("stream") and (hasattr(result, "__next__") or hasattr(result, "__anext__")):
        _record_server(call, result)
        return call.wrap_stream(result)
    _record(call, result)
    call.end()
    return result


def _record(call: LLMCall, response: Any) -> None:
    try:
        call.record_response(response)
        _record_server(call, response)
    except Exception:  # noqa: BLE001
        _warn_once()


def _record_server(call: LLMCall, response: Any) -> None:
    """Where the request went when the call named no base URL (a router deployment, a
    provider's default): litellm's ``_hidden_params["api_base"]`` (in litellm's response
    docs). Not over a base URL the call or environment named: litellm 1.110 reports the
    default there when the base came from ``OPENAI_API_BASE``."""
    if call.server_known:
        return
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        call.record_server(*_server(hidden.get("api_base"), ""))


def _new_call(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMCall:
    model = kwargs.get("model", args[0] if args else "")
    model, provider = _provider(model if isinstance(model, str) else str(model),
                                kwargs.get("custom_llm_provider"))
    params = {k: kwargs[k] for k in _PARAMS if kwargs.get(k) is not None}
    base = kwargs.get("api_base") or kwargs.get("base_url") or _env_base(provider)
    address, port = _server(base, provider)
    if operation == "chat":
        messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
        params["tool_definitions"] = kwargs.get("tools")
    else:
        messages = None
    scope = current_scope()
    call = LLMCall(None, model=model, provider=PROVIDERS.get(provider, provider),
                   session_id=scope.session_id if scope is not None else "BUS",
                   operation=operation, messages=messages if isinstance(messages, list) else None,
                   server_address=address, server_port=port, **params)
    call.server_known = bool(base)
    return call


_provider_names: frozenset[str] | None = None


def _provider(model: str, explicit: Any) -> tuple[str, str]:
    """(the model the provider is asked for, litellm's provider name), without
    ``litellm.get_llm_provider`` (it prints to stdout for unknown models): the explicit
    argument, the ``provider/`` prefix (stripped, as litellm does), or the model's entry in
    litellm's local price map."""
    global _provider_names
    import litellm

    if _provider_names is None:
        _provider_names = frozenset(str(getattr(p, "value", p)) for p in litellm.provider_list)
    prefix, sep, rest = model.partition("/")
    if sep and prefix in _provider_names and (not explicit or explicit == prefix):
        return rest, prefix
    if isinstance(explicit, str) and explicit:
        return model, explicit
    found = _get(litellm.model_cost.get(model), "litellm_provider")
    return model, found if isinstance(found, str) and found else "litellm"


def _env_base(provider: str) -> str | None:
    """The OpenAI base URL litellm takes from its settings or the environment."""
    if provider != "openai":
        return None
    import litellm

    base = litellm.api_base or os.environ.get("OPENAI_BASE_URL") \
        or os.environ.get("OPENAI_API_BASE")
    return base if isinstance(base, str) and base else None


def _server(api_base: Any, provider: str) -> tuple[str | None, int | None]:
    """server.address and server.port from the call's api_base, else the provider's API."""
    base = api_base if isinstance(api_base, str) and api_base else _DEFAULT_BASES.get(provider)
    if base is None:
        return None, None
    try:
        parts = urlsplit(base)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port
