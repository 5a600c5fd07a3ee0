"""Sticky assignment: every request of a user goes to the same variant, the one `/v1/assignments` names and
the seed's ABRouter computes."""
import json
import random
import urllib.parse
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from conftest import bucket, expected_variant, raw_request, split_experiment, start_gateway, start_mock

EXPERIMENT = "sticky-exp"
MODEL = "sticky-bot"
SPLIT = 0.3
USERS = 1000
REQUESTS_PER_USER = 3


def test_sticky_assignment_matches_the_seed(procs, tmp_path):
    mock = start_mock(procs, latency_ms=0, tokens_per_second=0, output_tokens=4, threads=2)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=SPLIT)])
    client = gateway.client()
    users = [f"user-{i:04d}" for i in range(USERS)]
    jobs = [u for _ in range(REQUESTS_PER_USER) for u in users]
    random.Random(7).shuffle(jobs)

    def send(user):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, user=user, messages=[{"role": "user", "content": "hi"}])
        raw.parse()
        return user, raw.headers["x-bakeoff-variant"], raw.headers["x-bakeoff-experiment"]

    def assignment(user):
        query = urllib.parse.urlencode({"experiment": EXPERIMENT, "user": user})
        status, _, body = raw_request(f"{gateway.root}/v1/assignments?{query}")
        assert status == 200, body
        return user, json.loads(body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, jobs))
        assignments = dict(pool.map(assignment, users))

    seen = defaultdict(set)
    for user, variant, experiment in answers:
        assert experiment == EXPERIMENT
        seen[user].add(variant)
    assert len(answers) == USERS * REQUESTS_PER_USER
    several = {u: v for u, v in seen.items() if len(v) != 1}
    assert not several, f"users in several variants: {list(several.items())[:5]}"

    mismatched = []
    for user in users:
        (variant,) = seen[user]
        a = assignments[user]
        seed = expected_variant(EXPERIMENT, user, SPLIT)
        if not (variant == a["variant"] == seed and a["bucket"] == bucket(EXPERIMENT, user)):
            mismatched.append((user, variant, a, seed))
    assert not mismatched, f"{len(mismatched)} users differ, e.g. {mismatched[:3]}"
    assert assignments[users[0]]["upstream_model"] in (f"{MODEL}-v1", f"{MODEL}-v2")

    counts = Counter(next(iter(v)) for v in seen.values())
    share = counts["treatment"] / USERS
    print(f"treatment share {share:.3f} (split {SPLIT}); counts {dict(counts)}")
    assert abs(share - SPLIT) < 0.07, counts

    # The store agrees: one variant per user, as answered.
    assert gateway.stop() == 0, gateway.process.stderr
    events = [e for e in gateway.export() if e["event"] == "request"]
    assert len(events) == USERS * REQUESTS_PER_USER
    for e in events:
        assert e["status"] == "ok", e
        assert e["experiment"] == EXPERIMENT
        assert {e["variant"]} == seen[e["user_id"]], e


def test_assignments_endpoint_errors(procs, tmp_path):
    mock = start_mock(procs)
    gateway = start_gateway(procs, tmp_path, [split_experiment(EXPERIMENT, MODEL, mock.base_url, mock.base_url, split=SPLIT)])
    status, _, body = gateway.get("/v1/assignments?user=u1")
    assert status == 400 and "error" in json.loads(body)
    status, _, body = gateway.get(f"/v1/assignments?experiment={EXPERIMENT}")
    assert status == 400 and "error" in json.loads(body)
    status, _, body = gateway.get("/v1/assignments?experiment=nope&user=u1")
    assert status == 404 and "error" in json.loads(body)
    # The model alias names the experiment too.
    status, _, body = gateway.get(f"/v1/assignments?experiment={MODEL}&user=u1")
    assert status == 200 and json.loads(body)["experiment"] == EXPERIMENT
