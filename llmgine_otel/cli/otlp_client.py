"""OTLP client connections for the CLI (``doctor``, ``replay``), from the same variables and
with the same rules as the SDK's exporters: protocol, endpoint, headers (per signal first),
TLS (``https``, ``OTEL_EXPORTER_OTLP_INSECURE``, certificate, client key and certificate).

:class:`Target` is one signal's destination; :func:`grpc_channel` and :func:`http_session`
open it; :func:`send` sends one request's bytes and classifies the outcome; :func:`probe` is
doctor's check (one empty export, a no-op for any OTLP receiver) in plain words.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmgine_otel.otel_env import SignalPlan

__all__ = ["Outcome", "Target", "grpc_channel", "grpc_credentials", "http_session", "probe", "send",
           "target_for"]

_GRPC_METHOD = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


@dataclass(frozen=True)
class Target:
    """Where and how one signal is sent."""

    signal: str
    protocol: str
    endpoint: str
    """As configured (gRPC: a URL or host:port; OTLP/HTTP: the full URL with its path)."""
    headers: tuple[tuple[str, str], ...] = ()
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None
    insecure: bool | None = None
    """gRPC only; None: as the SDK decides from the scheme."""
    compression: str | None = None

    @property
    def hostport(self) -> str:
        host, port, _ = self.host_port_tls()
        return f"{host}:{port}"

    def host_port_tls(self) -> tuple[str, int, bool]:
        """(host, port, TLS) as the SDK's exporter resolves them."""
        raw = self.endpoint if "://" in self.endpoint else "//" + self.endpoint
        u = urlparse(raw)
        scheme = u.scheme
        default_port = 4317 if self.protocol == "grpc" else (443 if scheme == "https" else 4318)
        host, port = u.hostname or "localhost", u.port or default_port
        if self.protocol != "grpc":
            return host, port, scheme == "https"
        if scheme == "https":
            return host, port, True
        if self.insecure is not None:
            return host, port, not self.insecure
        return host, port, scheme != "http"


def target_for(plan: SignalPlan, env: Mapping[str, str] | None = None) -> Target:
    """The target of ``plan``'s OTLP exporter, with its effective options."""
    from opentelemetry.util.re import parse_env_headers

    env = os.environ if env is None else env
    up = plan.signal.upper()
    raw = env.get(f"OTEL_EXPORTER_OTLP_{up}_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    headers = tuple((k.strip().lower(), v.strip())
                    for k, v in parse_env_headers(raw or "", liberal=True).items())
    opt = {k: v.value for k, v in plan.options.items()}
    protocol = plan.protocol.value
    return Target(plan.signal, protocol, plan.endpoint.value, headers, opt.get("certificate"),
                  opt.get("client_key"), opt.get("client_certificate"), opt.get("insecure"),
                  opt.get("compression"))


def grpc_channel(target: Target) -> Any:
    import grpc

    host, port, tls = target.host_port_tls()
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    compression = grpc.Compression.Gzip if target.compression == "gzip" else None
    if not tls:
        return grpc.insecure_channel(hp, compression=compression)
    creds = grpc_credentials(target.certificate, target.client_key, target.client_certificate)
    return grpc.secure_channel(hp, creds, compression=compression)


def grpc_credentials(certificate: str | None, client_key: str | None,
                     client_certificate: str | None) -> Any:
    """TLS channel credentials from PEM files: the CA (unset: the system's), and the client
    key and certificate (mTLS). The one place gRPC credentials are made from the
    ``OTEL_EXPORTER_OTLP_*`` files, for this module's channels and the exporters'
    (``exporters.build.grpc_kwargs``)."""
    import grpc

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(certificate), private_key=read(client_key),
        certificate_chain=read(client_certificate))


def http_session(target: Target) -> Any:
    """A requests session for ``target``: its CA (beating ``REQUESTS_CA_BUNDLE``), client
    certificate and headers."""
    import requests

    from llmgine_otel.exporters.otlp_http import _CertificateFirstSession

    session = _CertificateFirstSession() if target.certificate else requests.Session()
    if target.certificate:
        session.verify = target.certificate
    if target.client_certificate and target.client_key:
        session.cert = (target.client_certificate, target.client_key)
    elif target.client_certificate:
        session.cert = target.client_certificate
    session.headers.update(dict(target.headers))
    session.headers["Content-Type"] = "application/x-protobuf"
    return session


@dataclass
class Outcome:
    """The result of one export request."""

    ok: bool
    kind: str = ""
    """``ok``, ``refused``, ``dns``, ``timeout``, ``tls``, ``auth``, ``not_found``,
    ``unimplemented``, ``retryable``, ``rejected`` or ``error``."""
    detail: str = ""
    response: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.kind in ("retryable", "timeout", "refused")


def send(target: Target, body: bytes, timeout_s: float, *, channel: Any = None,
         session: Any = None) -> Outcome:
    """Send one OTLP request's bytes to ``target`` (over ``channel`` / ``session`` when given)."""
    if target.protocol == "grpc":
        return _send_grpc(target, body, timeout_s, channel)
    return _send_http(target, body, timeout_s, session)


def _send_grpc(target: Target, body: bytes, timeout_s: float, channel: Any) -> Outcome:
    import grpc

    own = channel is None
    channel = channel or grpc_channel(target)
    try:
        call = channel.unary_unary(_GRPC_METHOD[target.signal], request_serializer=None,
                                   response_deserializer=None)
        response = call(body, timeout=timeout_s, metadata=target.headers or None)
        return Outcome(True, "ok", response=response)
    except grpc.RpcError as err:
        code = err.code().name if hasattr(err, "code") else "UNKNOWN"  # type: ignore[attr-defined]
        detail = f"gRPC {code}: {err.details() if hasattr(err, 'details') else err}"  # type: ignore[attr-defined]
        kind = {"UNAUTHENTICATED": "auth", "PERMISSION_DENIED": "auth",
                "UNIMPLEMENTED": "unimplemented", "DEADLINE_EXCEEDED": "timeout",
                "UNAVAILABLE": "retryable", "RESOURCE_EXHAUSTED": "retryable",
                "ABORTED": "retryable", "CANCELLED": "retryable"}.get(code, "rejected")
        return Outcome(False, kind, detail, extra={"code": code})
    finally:
        if own:
            channel.close()


def _send_http(target: Target, body: bytes, timeout_s: float, session: Any) -> Outcome:
    import gzip

    import requests

    own = session is None
    session = session or http_session(target)
    headers = {}
    if target.compression == "gzip":
        body, headers = gzip.compress(body), {"Content-Encoding": "gzip"}
    try:
        r = session.post(target.endpoint, data=body, timeout=timeout_s, headers=headers)
    except requests.exceptions.SSLError as exc:
        return Outcome(False, "tls", _first_line(exc))
    except requests.exceptions.ConnectTimeout as exc:
        return Outcome(False, "timeout", _first_line(exc))
    except requests.exceptions.ReadTimeout as exc:
        return Outcome(False, "timeout", _first_line(exc))
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        kind = "dns" if ("Name or service not known" in text or "getaddrinfo" in text
                         or "NameResolution" in text) else "refused"
        return Outcome(False, kind, _first_line(exc))
    finally:
        if own:
            session.close()
    detail = f"HTTP {r.status_code}"
    if 200 <= r.status_code < 300:
        return Outcome(True, "ok", detail, response=r.content)
    kind = ("auth" if r.status_code in (401, 403) else
            "not_found" if r.status_code in (404, 405) else
            "retryable" if r.status_code in (429, 502, 503, 504) else "rejected")
    return Outcome(False, kind, f"{detail}: {r.text[:200].strip()}",
                   extra={"status": r.status_code, "retry_after": r.headers.get("Retry-After")})


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


# -- doctor's check ----------------------------------------------------------------------------
_EMPTY = {"traces": "ExportTraceServiceRequest", "logs": "ExportLogsServiceRequest",
          "metrics": "ExportMetricsServiceRequest"}


def probe(target: Target, timeout_s: float = 3.0) -> tuple[bool, str]:
    """(ok, sentence): a TCP connect, then one empty export of ``target``'s signal."""
    host, port, tls = target.host_port_tls()
    hp = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except socket.gaierror:
        return False, f"the host in {hp} does not resolve. Check the endpoint variable."
    except ConnectionRefusedError:
        return False, (f"nothing listens on {hp}. Start a collector (`llmgine-otel collector "
                       "run`) or fix the endpoint variable.")
    except OSError as exc:
        return False, f"cannot connect to {hp}: {exc}."
    outcome = send(target, b"", timeout_s)  # an empty Export*ServiceRequest is zero bytes
    proto = "OTLP/gRPC" if target.protocol == "grpc" else "OTLP/HTTP"
    where = target.endpoint if target.protocol != "grpc" else hp
    if outcome.ok:
        return True, f"{where} answered an {proto} {target.signal} export{' (TLS)' if tls else ''}."
    return False, _sentence(target, outcome, where, tls) + f" ({outcome.detail})"


def _sentence(target: Target, o: Outcome, where: str, tls: bool) -> str:
    other = "4318 (OTLP/HTTP)" if target.protocol == "grpc" else "4317 (gRPC)"
    if o.kind == "timeout":
        return (f"{where} accepts connections but sends no OTLP answer in time: a firewall, the "
                f"other protocol's port (this is {target.protocol}; {other} is the other), or "
                "TLS on one side only (http:// vs https://).")
    if o.kind == "tls":
        return (f"the TLS handshake with {where} failed: set OTEL_EXPORTER_OTLP_CERTIFICATE to "
                "the CA that signed its certificate (and the client key/certificate for mTLS), "
                "or use http:// if it has no TLS.")
    if o.kind == "auth":
        return (f"{where} refused the credentials. Set the token it expects in "
                "OTEL_EXPORTER_OTLP_HEADERS (authorization=Bearer%20...).")
    if o.kind == "not_found":
        return (f"{where} has no OTLP {target.signal} receiver at this path: check the "
                f"endpoint (OTLP/HTTP appends /v1/{target.signal} to OTEL_EXPORTER_OTLP_ENDPOINT)"
                f"; if it takes no {target.signal}, set "
                f"OTEL_{target.signal.upper()}_EXPORTER=none.")
    if o.kind == "unimplemented":
        return (f"{where} speaks gRPC but has no OTLP {target.signal} service: is it a "
                "collector?")
    if o.kind == "retryable" and target.protocol == "grpc":
        return (f"{where} is reachable but the gRPC channel failed: often TLS on one side only "
                "(http:// vs https://, OTEL_EXPORTER_OTLP_INSECURE, "
                "OTEL_EXPORTER_OTLP_CERTIFICATE), the HTTP port given for gRPC, or a non-OTLP "
                "server.")
    if o.kind in ("refused", "dns"):
        return f"cannot reach {where}."
    return f"{where} answered the export with an error."
