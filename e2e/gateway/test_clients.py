"""The most used OpenAI-compatible client libraries against a per-user experiment: LiteLLM's SDK
(`litellm.completion`) and LangChain's `ChatOpenAI`, each the way its users pass the end user.

Every request must land in the variant the seed's ABRouter gives its user (two mock upstreams whose replies
start with the variant's name show where it went) and be stored under that user (`bakeoff export`).

What goes over the wire (pinned versions, see the Makefile's TEST_PY_PACKAGES; checked by
test_what_litellm_sends):
- LiteLLM 1.108.7 (and 1.110.2, the newest when this was written) drops `user=` for model names outside
  OpenAI's own catalogue with the `openai/` provider ("openai/support-bot"): the request carries no user at
  all, so a per-user experiment can only answer 400. It does send `safety_identifier=` (OpenAI's successor of
  `user`), `extra_headers`, `user=` with `allowed_openai_params=["user"]`, and `user=` with the
  `litellm_proxy/` provider (LiteLLM's own client for OpenAI-compatible proxies).
- LangChain's ChatOpenAI sends `model_kwargs={"user": ...}` and `.bind(user=...)` as the body's `user`.
"""
from __future__ import annotations

import json
import os

import pytest

# LiteLLM fetches its model cost map from the internet at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402

from conftest import (CLIENT_KEY, HTTP_TIMEOUT, expected_variant, export_store, split_experiment,  # noqa: E402
                      start_gateway, start_mock, users_in, wait_until)

EXPERIMENT = "clients-exp"
MODEL = "support-bot"
SPLIT = 0.5
MESSAGES = [{"role": "user", "content": "Where is my order?"}]

litellm.suppress_debug_info = True
litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning")


@pytest.fixture(scope="module")
def setup(module_procs, tmp_path_factory):
    control = start_mock(module_procs, latency_ms=0, tokens_per_second=0, reply_prefix="control-reply")
    treatment = start_mock(module_procs, latency_ms=0, tokens_per_second=0, reply_prefix="treatment-reply")
    gw = start_gateway(module_procs, tmp_path_factory.mktemp("clients"),
                       [split_experiment(EXPERIMENT, MODEL, control.base_url, treatment.base_url, split=SPLIT)])
    return gw, control, treatment


def two_users(tag: str) -> list[str]:
    """One user the seed's router puts into each variant (ids unique to the test)."""
    return [users_in(EXPERIMENT, v, 1, split=SPLIT, prefix=f"cl-{tag}")[0] for v in ("control", "treatment")]


def check_stored(gw, user: str, count: int):
    """The user's request events: `count` of them, all ok, all in the router's variant for the user."""
    def stored():
        # Not `--experiment`: that refuses a store with no events yet.
        return [e for e in export_store(gw.store) if e.get("event") == "request" and e.get("user_id") == user
                and e.get("experiment") == EXPERIMENT]
    # Request events are committed within the flush interval (50 ms here).
    mine = wait_until(lambda: len(stored()) >= count and stored(), timeout=10, message=f"{count} request events of {user}")
    assert len(mine) == count, f"{user}: {len(mine)} request events stored, expected {count}: {mine}"
    want = expected_variant(EXPERIMENT, user, SPLIT)
    assert {e["variant"] for e in mine} == {want}, f"{user}: stored variants {[e['variant'] for e in mine]}, router says {want}"
    assert all(e["status"] == "ok" for e in mine), mine


def litellm_text(response, stream: bool) -> str:
    if stream:
        return "".join((chunk.choices[0].delta.content or "") for chunk in response if chunk.choices)
    return response.choices[0].message.content


def litellm_call(gw, stream: bool, provider: str = "openai", **kw):
    response = litellm.completion(model=f"{provider}/{MODEL}", api_base=gw.base_url, api_key=CLIENT_KEY, messages=MESSAGES,
                                  stream=stream, timeout=HTTP_TIMEOUT, max_retries=0, **kw)
    return litellm_text(response, stream)


# --------------------------------------------------------------------------------------------- LiteLLM
@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_litellm_safety_identifier(setup, stream):
    """`litellm.completion(..., safety_identifier=user)`: the gateway takes `safety_identifier` as the user."""
    gw, _, _ = setup
    for user in two_users(f"safety-{stream}"):
        text = litellm_call(gw, stream, safety_identifier=user)
        assert text.startswith(f"{expected_variant(EXPERIMENT, user, SPLIT)}-reply"), (user, text)
        check_stored(gw, user, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
@pytest.mark.parametrize("how", ["litellm_proxy", "allowed_openai_params", "header"])
def test_litellm_user_passed_through(setup, stream, how):
    """The other ways LiteLLM users can send the user: `user=` with the `litellm_proxy/` provider, `user=` let
    through with `allowed_openai_params`, or the user header."""
    gw, _, _ = setup
    for user in two_users(f"{how}-{stream}"):
        kw = ({"user": user, "provider": "litellm_proxy"} if how == "litellm_proxy"
              else {"user": user, "allowed_openai_params": ["user"]} if how == "allowed_openai_params"
              else {"extra_headers": {"X-Bakeoff-User": user}})
        text = litellm_call(gw, stream, **kw)
        assert text.startswith(f"{expected_variant(EXPERIMENT, user, SPLIT)}-reply"), (user, text)
        check_stored(gw, user, 1)


def test_litellm_precedence(setup):
    """Body `user` wins over `safety_identifier`, which wins over the user header."""
    gw, _, _ = setup
    a, b = two_users("prec-body")
    c, d = two_users("prec-safety")
    text = litellm_call(gw, False, user=a, allowed_openai_params=["user"], safety_identifier=b,
                        extra_headers={"X-Bakeoff-User": b})
    assert text.startswith(f"{expected_variant(EXPERIMENT, a, SPLIT)}-reply"), text
    check_stored(gw, a, 1)
    text = litellm_call(gw, True, safety_identifier=c, extra_headers={"X-Bakeoff-User": d})
    assert text.startswith(f"{expected_variant(EXPERIMENT, c, SPLIT)}-reply"), text
    check_stored(gw, c, 1)
    stored_users = {e.get("user_id") for e in export_store(gw.store)}
    assert b not in stored_users and d not in stored_users


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_what_litellm_sends(setup, stream):
    """The pinned LiteLLM's wire format, straight to a mock upstream: with the `openai/` provider `user=` is
    dropped for a model name outside OpenAI's catalogue (no `user`, no `safety_identifier`) and
    `safety_identifier=` is sent as is; with `litellm_proxy/`, `user=` is sent.

    If a LiteLLM upgrade changes this, the gateway's handling and the README's advice need a look."""
    _, control, _ = setup
    control.clear()
    for provider, kw in (("openai", {"user": "wire-u1"}), ("openai", {"safety_identifier": "wire-s1"}),
                         ("litellm_proxy", {"user": "wire-u2"})):
        response = litellm.completion(model=f"{provider}/{MODEL}", api_base=control.base_url, api_key="x",
                                      messages=MESSAGES, stream=stream, timeout=HTTP_TIMEOUT, max_retries=0, **kw)
        litellm_text(response, stream)
    bodies = [json.loads(r["body"]) if isinstance(r["body"], str) else r["body"] for r in control.requests()]
    assert len(bodies) == 3, bodies
    assert "user" not in bodies[0] and "safety_identifier" not in bodies[0], bodies[0]
    assert bodies[1].get("safety_identifier") == "wire-s1" and "user" not in bodies[1], bodies[1]
    assert bodies[2].get("user") == "wire-u2", bodies[2]


# --------------------------------------------------------------------------------------------- LangChain
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("how", ["model_kwargs", "bind"])
def test_langchain_chat_openai(setup, stream, how):
    """ChatOpenAI with the user in `model_kwargs` or bound with `.bind(user=...)`: both send the body's `user`."""
    gw, _, _ = setup
    for user in two_users(f"lc-{how}-{stream}"):
        if how == "model_kwargs":
            chat = ChatOpenAI(base_url=gw.base_url, model=MODEL, api_key=CLIENT_KEY, max_retries=0, timeout=HTTP_TIMEOUT,
                              model_kwargs={"user": user})
        else:
            chat = ChatOpenAI(base_url=gw.base_url, model=MODEL, api_key=CLIENT_KEY, max_retries=0,
                              timeout=HTTP_TIMEOUT).bind(user=user)
        if stream:
            text = "".join(chunk.content for chunk in chat.stream("Where is my order?"))
        else:
            text = chat.invoke("Where is my order?").content
        assert text.startswith(f"{expected_variant(EXPERIMENT, user, SPLIT)}-reply"), (user, text)
        check_stored(gw, user, 1)
