"""HTTPS upstreams: `bakeoff mock-upstream --tls-cert --tls-key` serves a certificate from a throwaway CA made with
`openssl`, and the gateway trusts it through the upstream's `"tls": {"ca_file": ...}`.

A thousand requests over a few kept-alive client connections cost the upstream only as many TLS handshakes as
the gateway keeps connections (counted by the mock's `/mock/stats` and the gateway's
`bakeoff_upstream_connections_opened_total`), not one each; a certificate the gateway must not trust
(unknown CA, expired, another host's) gets the client a 502 that says why, without the upstream's address, and a
line on the gateway's stderr; a missing CA file stops `serve --check` with its JSON path.
"""
from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path

import openai
import pytest

from conftest import BIN, HTTP_TIMEOUT, Process, gateway_env, metric_value, run_bakeoff, start_gateway, wait_until

CLIENT_CONNECTIONS = 4
REQUESTS = 1000


def openssl(*args: str, cwd: Path):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    """A CA; its certificates for 127.0.0.1 (good), expired yesterday, and for another host; one key for all."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "30", "-subj", "/CN=Bakeoff e2e CA", cwd=d)
    openssl("req", *ec, "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)

    def issue(name: str, names: str, days: int):
        (d / f"{name}.ext").write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=d)

    issue("good", "IP:127.0.0.1,DNS:localhost", 30)
    issue("expired", "IP:127.0.0.1,DNS:localhost", -1)
    issue("wrong-host", "DNS:other.example", 30)
    return {"dir": d, "ca": d / "ca.pem", "key": d / "key.pem", "good": d / "good.pem",
            "expired": d / "expired.pem", "wrong-host": d / "wrong-host.pem"}


class TLSMock:
    """A `mock-upstream` serving HTTPS, and one kept-alive connection of the test's own to read its stats (so
    reading them adds no handshake after the first)."""

    def __init__(self, process: Process, ca: Path, verify: bool):
        self.process = process
        self.base_url = process.wait_ready().group(1)
        u = urllib.parse.urlsplit(self.base_url)
        self.host, self.port = u.hostname, u.port
        # The test's own reads check the certificate too, unless it is one made to be refused.
        context = ssl.create_default_context(cafile=str(ca))
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._stats = http.client.HTTPSConnection(self.host, self.port, timeout=HTTP_TIMEOUT, context=context)

    def stats(self) -> dict:
        self._stats.request("GET", "/mock/stats")
        r = self._stats.getresponse()
        body = r.read()
        assert r.status == 200, body
        return json.loads(body)


def start_tls_mock(registry, certs, certificate: str = "good") -> TLSMock:
    args = [BIN, "mock-upstream", "--port", "0", "--latency-ms", "0", "--jitter-ms", "0", "--tokens-per-second", "0",
            "--output-tokens", "8", "--tls-cert", str(certs[certificate]), "--tls-key", str(certs["key"])]
    p = registry.add(Process("mock-upstream (TLS)", args, r"mock-upstream listening on (https://\S+/v1)"))
    return TLSMock(p, certs["ca"], verify=certificate == "good")


def tls_experiment(mock: TLSMock, ca_file: Path | None) -> dict:
    upstream = {"base_url": mock.base_url, "model": "m-tls"}
    if ca_file is not None:
        upstream["tls"] = {"ca_file": str(ca_file)}
    return {"name": "tls-exp", "model": "tls-bot", "per_request_assignment": True,
            "variants": [{"name": "only", "weight": 1, "upstream": upstream}]}


def chat(client: openai.OpenAI, i: int):
    return client.chat.completions.create(model="tls-bot", messages=[{"role": "user", "content": f"question {i}"}], user=f"user-{i % 50}")


def test_a_thousand_requests_cost_a_handshake_per_pooled_connection_not_per_request(procs, tmp_path, certs):
    mock = start_tls_mock(procs, certs)
    assert mock.base_url.startswith("https://127.0.0.1:")
    before = mock.stats()
    assert before["tls"] is True and before["requests"] == 0
    gw = start_gateway(procs, tmp_path / "gw", [tls_experiment(mock, certs["ca"])])

    errors: list[str] = []
    answered = [0] * CLIENT_CONNECTIONS

    def worker(k: int):
        # One client, one kept-alive connection to the gateway: requests go one after another on it.
        try:
            with gw.client() as client:
                for i in range(k, REQUESTS, CLIENT_CONNECTIONS):
                    r = chat(client, i)
                    if r.choices[0].message.content and r.usage and r.usage.completion_tokens == 8:
                        answered[k] += 1
                    else:
                        errors.append(f"request {i}: unexpected answer {r}")
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENT_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:5]
    assert sum(answered) == REQUESTS

    after = mock.stats()
    assert after["requests"] == REQUESTS
    # At most CLIENT_CONNECTIONS requests are in flight at once, so the gateway needs at most that many upstream
    # connections: one TLS handshake each, however many requests they carry.
    handshakes = after["tls_handshakes"] - before["tls_handshakes"]
    assert 1 <= handshakes <= CLIENT_CONNECTIONS, after
    opened = metric_value(gw.metrics(), "bakeoff_upstream_connections_opened_total")
    assert opened == handshakes, (opened, after)
    assert "TLS" not in gw.process.stderr and "not trusted" not in gw.process.stderr


def refused(procs, tmp_path, certs, certificate: str, ca_file: Path | None, name: str) -> tuple[str, object]:
    """What a client gets from a gateway in front of a mock with `certificate`; the gateway's stderr line too."""
    mock = start_tls_mock(procs, certs, certificate)
    gw = start_gateway(procs, tmp_path / name, [tls_experiment(mock, ca_file)])
    with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            chat(client, 1)
    e = caught.value
    assert e.status_code == 502
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error", body)
    assert error.get("code") == "upstream_unreachable", e.body
    message = error.get("message", "")
    # The client learns why, not where the upstream is.
    assert str(mock.port) not in message and "127.0.0.1" not in message, message
    line = wait_until(lambda: next((l for l in gw.process.lines if "not trusted" in l), None), message="the stderr line")
    assert mock.base_url in line, line  # the operator's line names the upstream
    assert mock.stats()["requests"] == 0  # nothing reached the upstream
    return message, line


def test_a_gateway_without_the_ca_gets_a_clear_502(procs, tmp_path, certs):
    message, _ = refused(procs, tmp_path, certs, "good", None, "no-ca")
    assert message.startswith("cannot reach the upstream: its TLS certificate is not trusted: it was issued by a CA the gateway does not trust"), message
    assert '"ca_file"' in message


def test_an_expired_certificate_is_refused(procs, tmp_path, certs):
    message, _ = refused(procs, tmp_path, certs, "expired", certs["ca"], "expired")
    assert "its TLS certificate is not trusted: it has expired" in message, message


def test_a_certificate_for_another_host_is_refused(procs, tmp_path, certs):
    message, _ = refused(procs, tmp_path, certs, "wrong-host", certs["ca"], "wrong-host")
    assert "its TLS certificate is not trusted: it does not name the host" in message, message


def test_a_missing_ca_file_stops_the_check_with_its_json_path(tmp_path, certs):
    config = {"store": {"path": str(tmp_path / "store.db")},
              "experiments": [{"name": "e", "model": "b", "variants": [{"name": "only", "weight": 1, "upstream": {
                  "base_url": "https://127.0.0.1:9443/v1", "model": "m", "tls": {"ca_file": "missing-ca.pem"}}}]}]}
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    r = run_bakeoff("serve", "--check", "--config", str(path), check=False, env=gateway_env())
    assert r.returncode != 0
    assert f"experiments[0].variants[0].upstream.tls.ca_file: {tmp_path}/missing-ca.pem: no such file" in r.stderr, r.stderr

    config["experiments"][0]["variants"][0]["upstream"]["tls"]["ca_file"] = str(certs["ca"])
    path.write_text(json.dumps(config))
    r = run_bakeoff("serve", "--check", "--config", str(path), check=False, env=gateway_env())
    assert r.returncode == 0, r.stderr
    assert f"TLS certificate checked against the CAs in {certs['ca']} only" in r.stdout


def test_the_mock_wants_a_certificate_and_its_key_together(certs):
    r = run_bakeoff("mock-upstream", "--port", "0", "--tls-cert", str(certs["good"]), check=False)
    assert r.returncode != 0 and "--tls-cert needs --tls-key" in r.stderr, r.stderr
    r = run_bakeoff("mock-upstream", "--port", "0", "--tls-cert", str(certs["key"]), "--tls-key", str(certs["key"]), check=False)
    assert r.returncode != 0 and "holds no PEM certificate" in r.stderr, r.stderr
