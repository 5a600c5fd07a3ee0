"""Many simultaneous streams, and a client that goes away in the middle of one."""
import asyncio
import time

import openai
import pytest

from conftest import metric_value, split_experiment, start_gateway, start_mock, users_in, wait_until

MESSAGES = [{"role": "user", "content": "stream please"}]
STREAMS = 300


def test_300_simultaneous_streams(procs, tmp_path):
    mock = start_mock(procs, tokens_per_second=20, output_tokens=10)
    full = start_mock(procs, tokens_per_second=0, output_tokens=10).client().chat.completions.create(
        model="m", messages=MESSAGES).choices[0].message.content
    gateway = start_gateway(procs, tmp_path, [split_experiment("conc-exp", "conc-bot", mock.base_url, mock.base_url)])

    async def main():
        client = gateway.async_client(timeout=180)
        started = asyncio.Event()
        opened = 0

        async def one(i):
            nonlocal opened
            stream = await client.chat.completions.create(model="conc-bot", messages=MESSAGES, user=f"conc-{i}", stream=True)
            opened += 1
            if opened == STREAMS:
                started.set()
            text, chunks = "", 0
            async for chunk in stream:
                chunks += 1
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            return text, chunks

        try:
            results = await asyncio.gather(*(one(i) for i in range(STREAMS)), return_exceptions=True)
        finally:
            await client.close()
        return results, started.is_set()

    t0 = time.monotonic()
    results, all_opened = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of {STREAMS} streams failed, e.g. {errors[:3]!r}"
    wrong = [r for r in results if r[0] != full]
    assert not wrong, f"{len(wrong)} streams with wrong content, e.g. {wrong[:2]!r} (expected {full!r})"
    print(f"{STREAMS} streams in {time.monotonic() - t0:.1f} s")
    assert gateway.stop() == 0, gateway.process.stderr
    events = [e for e in gateway.export() if e["event"] == "request"]
    assert len(events) == STREAMS
    assert all(e["status"] == "ok" and e["output_tokens"] == 10 for e in events), [e for e in events if e["status"] != "ok"][:3]
    # TTFT is the first chunk with content: after the role-only chunk, before the end (10 tokens at 20/s).
    assert all(0 < e["ttft_ms"] < e["latency_ms"] and e["input_tokens"] >= 1 for e in events), events[:3]


def test_client_gone_mid_stream(procs, tmp_path):
    mock = start_mock(procs, tokens_per_second=5, output_tokens=50)
    gateway = start_gateway(procs, tmp_path, [split_experiment("gone-exp", "gone-bot", mock.base_url, mock.base_url)])
    user = users_in("gone-exp", "treatment", 1)[0]
    client = gateway.client()
    stream = client.chat.completions.create(model="gone-bot", messages=MESSAGES, user=user, stream=True)
    received = []
    for chunk in stream:
        received.append(chunk)
        if len(received) == 2:
            break
    stream.close()  # closes the response, and with it the connection (the body was not read to the end)
    client.close()

    def cancelled():
        return metric_value(gateway.metrics(), "bakeoff_requests_total", experiment="gone-exp", variant="treatment",
                            status="client_cancelled")
    # Noticed at the gateway's next write (the mock sends a chunk every 200 ms).
    wait_until(lambda: cancelled() == 1, timeout=20, message="status=client_cancelled in /metrics")
    text = gateway.metrics()
    assert metric_value(text, "bakeoff_requests_total", experiment="gone-exp", variant="treatment", status="ok") is None, text
    # The upstream call is cancelled too.
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_upstream_calls_active") == 0, timeout=20,
               message="no upstream call active")
    assert gateway.stop() == 0, gateway.process.stderr
    (event,) = [e for e in gateway.export() if e["event"] == "request"]
    assert event["status"] == "client_cancelled", event
    assert event["user_id"] == user and event["variant"] == "treatment"


def test_client_gone_while_waiting_for_a_non_streaming_answer(procs, tmp_path):
    mock = start_mock(procs, latency_ms=2000)
    gateway = start_gateway(procs, tmp_path, [split_experiment("gone2-exp", "gone2-bot", mock.base_url, mock.base_url)])
    client = gateway.client(timeout=0.3)  # gives up (and closes its connection) long before the upstream answers
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gone2-bot", messages=MESSAGES, user="impatient")
    client.close()

    def done():
        text = gateway.metrics()
        return sum(metric_value(text, "bakeoff_requests_total", experiment="gone2-exp", variant=v, status=s) or 0
                   for v in ("control", "treatment") for s in ("ok", "client_cancelled"))
    wait_until(lambda: done() == 1, timeout=30, message="the request's event")
    assert gateway.stop() == 0, gateway.process.stderr
    (event,) = [e for e in gateway.export() if e["event"] == "request"]
    assert event["status"] == "client_cancelled", event
