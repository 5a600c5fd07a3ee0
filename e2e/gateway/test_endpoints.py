"""/v1/models, /healthz and /metrics."""
import json

import openai
import pytest

from conftest import closed_port, metric_value, split_experiment, start_gateway, start_mock, users_in, wait_until

MESSAGES = [{"role": "user", "content": "hi"}]


def test_models_health_and_metrics(procs, tmp_path):
    mock = start_mock(procs)
    down = f"http://127.0.0.1:{closed_port()}/v1"
    gateway = start_gateway(procs, tmp_path, [
        split_experiment("m-exp-a", "alpha-bot", mock.base_url, mock.base_url),
        split_experiment("m-exp-b", "beta-bot", mock.base_url, down, split=0.5),
    ])
    client = gateway.client()

    models = client.models.list()
    assert sorted(m.id for m in models.data) == ["alpha-bot", "beta-bot"]
    assert all(m.object == "model" and m.owned_by == "bakeoff" for m in models.data)

    status, headers, body = gateway.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}

    # Traffic: 3 control + 2 treatment (alpha), 1 control + 2 treatment failing (beta), 1 stream,
    # 1 unknown model, 2 feedback.
    alpha_control = users_in("m-exp-a", "control", 3, prefix="m")
    alpha_treatment = users_in("m-exp-a", "treatment", 2, prefix="m")
    for u in alpha_control + alpha_treatment:
        raw = client.chat.completions.with_raw_response.create(model="alpha-bot", messages=MESSAGES, user=u)
    list(client.chat.completions.create(model="alpha-bot", messages=MESSAGES, user=alpha_control[0], stream=True))
    client.chat.completions.create(model="beta-bot", messages=MESSAGES, user=users_in("m-exp-b", "control", 1)[0])
    for u in users_in("m-exp-b", "treatment", 2):
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="beta-bot", messages=MESSAGES, user=u)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gamma-bot", messages=MESSAGES, user="x")
    rid = raw.headers["x-bakeoff-request-id"]
    for _ in range(2):
        status, _, body = gateway.post("/v1/feedback", {"request_id": rid, "user": alpha_treatment[-1], "name": "thumbs_up", "value": 1})
        assert status == 200, body

    expected = {
        ("m-exp-a", "control", "ok"): 4,
        ("m-exp-a", "treatment", "ok"): 2,
        ("m-exp-b", "control", "ok"): 1,
        ("m-exp-b", "treatment", "upstream_error"): 2,
    }

    def counts():
        text = gateway.metrics()
        got = {}
        for line in text.splitlines():
            if line.startswith("bakeoff_requests_total{"):
                labels = dict(part.split("=", 1) for part in line[len("bakeoff_requests_total{"):line.index("}")].split(","))
                key = tuple(labels[k].strip('"') for k in ("experiment", "variant", "status"))
                got[key] = int(float(line.rsplit(" ", 1)[1]))
        return got, text

    # The counters are updated right after the answer is sent: poll a little.
    wait_until(lambda: counts()[0] == expected, timeout=20, message=f"request counters {expected}")
    got, text = counts()
    assert got == expected, text
    assert metric_value(text, "bakeoff_rejected_requests_total", code="404") == 1, text
    assert metric_value(text, "bakeoff_feedback_total", experiment="m-exp-a", name="thumbs_up") == 2, text
    assert metric_value(text, "bakeoff_request_duration_seconds_count", experiment="m-exp-a", variant="control") == 4, text
    assert metric_value(text, "bakeoff_time_to_first_token_seconds_count", experiment="m-exp-a", variant="control") == 1, text
    assert metric_value(text, "bakeoff_output_tokens_total", experiment="m-exp-a", variant="treatment") == 2 * 12, text
    assert "# TYPE bakeoff_requests_total counter" in text
    assert metric_value(text, "bakeoff_requests_in_flight") is not None
    wait_until(lambda: metric_value(gateway.metrics(), "bakeoff_events_written_total") == 9 + 2, timeout=20,
               message="9 request events and 2 feedback events written")
