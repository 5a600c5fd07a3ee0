"""`bakeoff sample` on a store that `bakeoff serve` filled with content logging on: real openai client requests with a
system message come back as eval dataset lines with their full messages, roles included, drawn one per user."""
import json

from conftest import ADMIN_KEY, run_bakeoff, split_experiment, start_gateway, start_mock, users_in

EXPERIMENT = "sample-exp"
MODEL = "sample-bot"
SYSTEM = {"role": "system", "content": "You are a terse support agent.\nAnswer in one line."}


def conversation(who: str, i: int) -> list[dict]:
    return [
        SYSTEM,
        {"role": "user", "content": f"Where is order {who}-{i}? \"urgent\" \u00e9"},
        {"role": "assistant", "content": "Which order number?"},
        {"role": "user", "content": [{"type": "text", "text": f"number {i}"}]},
    ]


def test_sample_replays_logged_requests_with_their_roles(procs, tmp_path):
    mock = start_mock(procs)
    # The treatment's own system prompt replaces the client's upstream; the log keeps what the client sent.
    experiment = split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, log_content=True,
                                  treatment_extra={"system_prompt": "Variant prompt."})
    gateway = start_gateway(procs, tmp_path, [experiment])
    client = gateway.client()
    users = users_in(EXPERIMENT, "control", 6, prefix="s") + users_in(EXPERIMENT, "treatment", 6, prefix="s")
    heavy = users[0]

    sent = {}  # request id -> (messages, variant, user)
    for n, user in enumerate(users):
        for i in range(25 if user == heavy else 1):
            messages = conversation(f"#{n}", i)
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, user=user)
            raw.parse()
            sent[raw.headers["x-bakeoff-request-id"]] = (messages, raw.headers["x-bakeoff-variant"], user)
    # A stream is logged the same way.
    stream = client.chat.completions.with_raw_response.create(model=MODEL, messages=conversation("stream", 0), user=users[1], stream=True)
    for _ in stream.parse():
        pass
    sent[stream.headers["x-bakeoff-request-id"]] = (conversation("stream", 0), stream.headers["x-bakeoff-variant"], users[1])
    # A completion has its prompt; a QA request is left out.
    completion = client.completions.with_raw_response.create(model=MODEL, prompt="Once upon a time", user=users[2])
    completion.parse()
    qa = gateway.client(api_key=ADMIN_KEY).chat.completions.with_raw_response.create(
        model=MODEL, messages=conversation("qa", 0), user=users[3], extra_headers={"X-Bakeoff-Force-Variant": "treatment"})
    qa_id = qa.headers["x-bakeoff-request-id"]
    assert gateway.stop() == 0, gateway.process.stderr

    # The request events carry the messages as compact JSON, equal to what the client sent.
    events = {e["request_id"]: e for e in gateway.export(include_qa=True) if e["event"] == "request"}
    for request_id, (messages, _, _) in sent.items():
        assert events[request_id]["messages"] == messages
        assert events[request_id]["prompt"].startswith("You are a terse support agent.")
    assert "messages" not in events[completion.headers["x-bakeoff-request-id"]]

    out = tmp_path / "sample.jsonl"
    r = run_bakeoff("sample", "--db", str(gateway.store), "--experiment", EXPERIMENT, "--size", "12", "--seed", "7",
                    "--output", str(out))
    total = len(sent) + 1  # and the completion
    assert f"sampled 12 requests from 12 of 12 users (experiment {EXPERIMENT}, {total} requests with content) -> {out}" in r.stderr, r.stderr
    assert "left out: 1 QA request (--include-qa)" in r.stderr, r.stderr
    text = out.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 12
    assert not any(user in text for user in users), "no user ids in the dataset"
    drawn_users = []
    for line in lines:
        assert set(line) <= {"id", "messages", "prompt", "metadata"}
        assert line["id"] != qa_id
        if "prompt" in line:
            assert line["id"] == completion.headers["x-bakeoff-request-id"] and line["prompt"] == "Once upon a time"
            drawn_users.append(users[2])
            continue
        messages, variant, user = sent[line["id"]]
        assert line["messages"] == messages  # roles, the system message and content parts, exactly
        assert line["messages"][0] == SYSTEM
        assert line["metadata"]["live_variant"] == variant
        assert len(line["metadata"]["day"]) == 10
        drawn_users.append(user)
    # Uniform over users: 12 users, 12 requests, one each (the heavy user's 25 requests count once).
    assert sorted(drawn_users) == sorted(users)

    # The same seed gives the same dataset; to stdout without --output.
    again = run_bakeoff("sample", "--db", str(gateway.store), "--experiment", EXPERIMENT, "--size", "12", "--seed", "7")
    assert again.stdout == text
