"""Transport security: the Collector with collector/otelcol-tls.yaml (TLS + bearer token).
The right token gets everything exported; a wrong one is refused, and the refusal shows in
telemetry.stats and in the logs, never silently."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from reliability._workload import session_events, wait_collected
from reliability.conftest import accounting, collector, make_telemetry, record_figures

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TOKEN = "s3cret-token-for-tests-4f1c"
SESSIONS = 50


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca.pem, server.pem, key.pem)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_pem, cert_pem, key_pem = d / "ca.pem", d / "server.pem", d / "server-key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        _make_certs_openssl(d, ca_pem, cert_pem, key_pem)
        return ca_pem, cert_pem, key_pem
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmgine-otel test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


def _make_certs_openssl(d: Path, ca_pem: Path, cert_pem: Path, key_pem: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "neither the cryptography package nor the openssl CLI is available"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca-key.pem", "-out", str(ca_pem), "-days", "1",
        "-subj", "/CN=llmgine-otel test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key_pem), "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", str(ca_pem), "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-out", str(cert_pem), "-days", "1", "-extfile", "ext.cnf")


def _publish(tel: object, prefix: str) -> None:
    for i in range(SESSIONS):
        for ev in session_events(f"{prefix}-{i}"):
            tel.manager.observe_event(ev)  # type: ignore[attr-defined]


def test_tls_and_bearer_token(otel_env: dict[str, str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch,
                              caplog: pytest.LogCaptureFixture) -> None:
    ca, cert, key = _make_certs(tmp_path / "pki")
    env = {"LLMGINE_OTELCOL_TLS_CERT_FILE": str(cert), "LLMGINE_OTELCOL_TLS_KEY_FILE": str(key),
           "LLMGINE_OTELCOL_BEARER_TOKEN": TOKEN}
    with collector(tmp_path / "col", config="otelcol-tls.yaml", env=env) as col:
        endpoint = col.grpc_endpoint.replace("http://", "https://")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca))
        # right token
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {TOKEN}")
        good = make_telemetry(endpoint, tmp_path / "good")
        _publish(good, "tls-good")
        good_report = good.shutdown()
        good_acct = accounting(good)
        # wrong token
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer not-the-token")
        caplog.set_level(logging.WARNING)
        bad = make_telemetry(endpoint, tmp_path / "bad")
        _publish(bad, "tls-bad")
        bad_report = bad.shutdown()
        bad_acct = accounting(bad)
        got = wait_collected(col.file_path, SESSIONS * 6, SESSIONS * 10)
    exporter_errors = [r for r in caplog.records
                       if r.levelno >= logging.ERROR and "Failed to export" in r.getMessage()]
    unauth = [r for r in exporter_errors if "UNAUTHENTICATED" in r.getMessage()]
    bad_sessions = sum(1 for sp in got.spans.values()
                       if "tls-bad" in str(sp.get("attributes")))
    record_figures(
        "tls", good_spans=good_acct["spans"], good_logs=good_acct["logs"],
        good_completed=good_report.completed, spans_in_file=len(got.spans),
        logs_in_file=got.log_rows, bad_spans=bad_acct["spans"], bad_logs=bad_acct["logs"],
        bad_report=str(bad_report), exporter_error_records=len(exporter_errors),
        unauthenticated_records=len(unauth), bad_spans_in_file=bad_sessions)
    assert good_report.completed, good_report
    assert good_acct["spans"]["exported"] == good_acct["spans"]["produced"] == SESSIONS * 6
    assert good_acct["logs"]["exported"] == good_acct["logs"]["produced"] == SESSIONS * 10
    assert len(got.spans) == SESSIONS * 6 and got.log_rows == SESSIONS * 10
    assert bad_sessions == 0
    assert bad_acct["spans"]["exported"] == 0 and bad_acct["logs"]["exported"] == 0
    assert bad_acct["spans"]["dropped"].get("export_failed", 0) > 0, bad_acct
    assert bad_acct["logs"]["dropped"].get("export_failed", 0) > 0, bad_acct
    assert unauth, [r.getMessage() for r in caplog.records][-10:]
    assert sum(bad_report.undelivered.values()) > 0, bad_report
