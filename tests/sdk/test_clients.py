"""The official Python SDKs (`anthropic`, `openai`) against a running Strata gateway.

Run by crates/gateway/tests/sdk.rs, which starts a resolver, the gateway and a mock upstream and
passes one JSON argument:

    {"gateway": "http://127.0.0.1:PORT",   # the gateway's base URL
     "token": "strata_gw_...",             # a gateway token of a user in `leads`
     "other_token": "strata_gw_...",       # a gateway token of a user in no group
     "reply": "...",                       # the text the mock upstream answers with (plus an echo)
     "usage": {"input": I, "output": O},   # the token counts the mock upstream reports
     "models": {"anthropic": M, "responses": M, "chat": M},       # models allowed centrally
     "byok": {"anthropic": M, "responses": M},                   # models allowed with BYOK
     "denied": [{"api": ..., "model": ..., "who": "token"|"other_token",
                 "headers": {...}, "rule": "..."}],             # calls the policy refuses
     "listed": [...], "unlisted": [...]}   # models /v1/models must and must not list

The mock answers every prompt P with the text `<reply> echo: P`, split into several stream deltas.
Plain asserts only, so the SDKs are the only packages needed. Every check runs even when an
earlier one failed; the exit code is 1 if any failed. The Rust side then checks what the upstream
received (keys, headers, bodies).
"""

import json
import sys
import traceback
import warnings

import anthropic
import openai

SPEC = json.loads(sys.argv[1])
GATEWAY = SPEC["gateway"].rstrip("/")
TOKEN = SPEC["token"]
REPLY = SPEC["reply"]
USAGE_IN = SPEC["usage"]["input"]
USAGE_OUT = SPEC["usage"]["output"]
MODELS = SPEC["models"]
BYOK = SPEC["byok"]
BYOK_KEYS = {"anthropic": "sk-ant-byok-alice-0123", "openai": "sk-byok-alice-0123"}

COMMON = {"max_retries": 0, "timeout": 30.0}

# the SDKs warn about models they know to be deprecated; the mock does not care
warnings.filterwarnings("ignore", message=r"The model .* is deprecated", category=DeprecationWarning)


def expected(prompt):
    return f"{REPLY} echo: {prompt}"


def claude(token=TOKEN, **kw):
    return anthropic.Anthropic(base_url=GATEWAY, api_key=token, **COMMON, **kw)


def oai(token=TOKEN, **kw):
    return openai.OpenAI(base_url=GATEWAY + "/v1", api_key=token, **COMMON, **kw)


def eq(got, want, what):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def body_message(err):
    """The `error.message` of an SDK error's parsed body (Anthropic's body is the whole
    envelope, OpenAI's is the `error` object)"""
    body = err.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    assert isinstance(body, dict), f"the error body was not parsed as JSON: {err.body!r}"
    return body.get("message", "")


# ---- Anthropic ------------------------------------------------------------------------------


def anthropic_messages_create():
    prompt = "anthropic create"
    msg = claude().messages.create(
        model=MODELS["anthropic"],
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    )
    eq(msg.type, "message", "type")
    eq(msg.role, "assistant", "role")
    eq(msg.model, MODELS["anthropic"], "model")
    eq(len(msg.content), 1, "content blocks")
    eq(msg.content[0].type, "text", "block type")
    eq(msg.content[0].text, expected(prompt), "text")
    eq(msg.stop_reason, "end_turn", "stop_reason")
    eq(msg.usage.input_tokens, USAGE_IN, "usage.input_tokens")
    eq(msg.usage.output_tokens, USAGE_OUT, "usage.output_tokens")
    # the raw response carries the gateway's decision headers
    raw = claude().messages.with_raw_response.create(
        model=MODELS["anthropic"],
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    )
    assert raw.headers.get("x-strata-decision-id"), dict(raw.headers)
    eq(raw.parse().content[0].text, expected(prompt), "raw text")


def anthropic_messages_stream_helper():
    prompt = "anthropic stream helper"
    with claude().messages.stream(
        model=MODELS["anthropic"],
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1, f"the text came in one piece: {pieces!r}"
    eq("".join(pieces), expected(prompt), "streamed text")
    eq(final.content[0].text, expected(prompt), "final message text")
    eq(final.stop_reason, "end_turn", "final stop_reason")
    eq(final.usage.input_tokens, USAGE_IN, "final usage.input_tokens")
    eq(final.usage.output_tokens, USAGE_OUT, "final usage.output_tokens")


def anthropic_messages_stream_raw_events():
    prompt = "anthropic stream raw"
    events = list(
        claude().messages.create(
            model=MODELS["anthropic"],
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": prompt}],
        )
    )
    kinds = [e.type for e in events]
    eq(kinds[0], "message_start", "first event")
    eq(kinds[1], "content_block_start", "second event")
    eq(kinds[-3:], ["content_block_stop", "message_delta", "message_stop"], "last events")
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 1, kinds
    eq("".join(d.delta.text for d in deltas), expected(prompt), "joined deltas")
    eq(events[0].message.usage.input_tokens, USAGE_IN, "message_start usage")
    md = [e for e in events if e.type == "message_delta"][0]
    eq(md.delta.stop_reason, "end_turn", "message_delta stop_reason")
    eq(md.usage.output_tokens, USAGE_OUT, "message_delta usage")


def anthropic_count_tokens():
    r = claude().messages.count_tokens(
        model=MODELS["anthropic"], messages=[{"role": "user", "content": "count me"}]
    )
    eq(r.input_tokens, USAGE_IN, "count_tokens")


def anthropic_models_list():
    ids = [m.id for m in claude().models.list()]
    for m in SPEC["listed"]:
        assert m in ids, f"{m} not listed: {ids}"
    for m in SPEC["unlisted"]:
        assert m not in ids, f"{m} listed: {ids}"


def check_models_retrieve(client, listed, not_found):
    """`models.retrieve` answers a listed model, and raises the SDK's NotFoundError naming an
    unlisted one"""
    eq(client.models.retrieve(listed).id, listed, "models.retrieve")
    unlisted = SPEC["unlisted"][0]
    try:
        client.models.retrieve(unlisted)
    except not_found as e:
        assert unlisted in body_message(e), f"404 message: {e}"
    else:
        raise AssertionError("models.retrieve of an unlisted model did not raise NotFoundError")


def anthropic_models_retrieve():
    check_models_retrieve(claude(), SPEC["listed"][0], anthropic.NotFoundError)


def anthropic_byok():
    prompt = "anthropic byok"
    c = anthropic.Anthropic(
        base_url=GATEWAY,
        api_key=BYOK_KEYS["anthropic"],
        default_headers={"X-Strata-Governance-Token": TOKEN},
        **COMMON,
    )
    msg = c.messages.create(
        model=BYOK["anthropic"],
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    )
    eq(msg.content[0].text, expected(prompt), "byok text")


def anthropic_wrong_token():
    try:
        claude(token="strata_gw_not-a-token").messages.create(
            model=MODELS["anthropic"], max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    except anthropic.AuthenticationError as e:
        eq(e.status_code, 401, "status")
        assert "gateway token" in body_message(e), body_message(e)
        return
    raise AssertionError("a wrong gateway token was accepted")


def anthropic_upstream_error():
    try:
        claude().messages.create(
            model=MODELS["anthropic"],
            max_tokens=8,
            messages=[{"role": "user", "content": "please-fail"}],
        )
    except anthropic.APIStatusError as e:
        eq(e.status_code, 529, "status")
        eq(body_message(e), "upstream is overloaded", "upstream message")
        eq(e.response.headers.get("x-strata-error-source"), "upstream", "error source")
        return
    raise AssertionError("the upstream's 529 did not raise")


# ---- OpenAI ---------------------------------------------------------------------------------


def openai_chat_create():
    prompt = "chat create"
    r = oai().chat.completions.create(
        model=MODELS["chat"], messages=[{"role": "user", "content": prompt}]
    )
    eq(r.object, "chat.completion", "object")
    eq(r.model, MODELS["chat"], "model")
    eq(r.choices[0].message.role, "assistant", "role")
    eq(r.choices[0].message.content, expected(prompt), "content")
    eq(r.choices[0].finish_reason, "stop", "finish_reason")
    eq(r.usage.prompt_tokens, USAGE_IN, "prompt_tokens")
    eq(r.usage.completion_tokens, USAGE_OUT, "completion_tokens")
    eq(r.usage.total_tokens, USAGE_IN + USAGE_OUT, "total_tokens")


def openai_chat_stream():
    prompt = "chat stream"
    chunks = list(
        oai().chat.completions.create(
            model=MODELS["chat"],
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks), chunks
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([t for t in texts if t]) > 1, texts
    eq("".join(texts), expected(prompt), "joined deltas")
    eq(chunks[0].choices[0].delta.role, "assistant", "first delta role")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    eq(finishes, ["stop"], "finish reasons")
    eq(chunks[-1].choices, [], "usage chunk has no choices")
    eq(chunks[-1].usage.prompt_tokens, USAGE_IN, "stream prompt_tokens")
    eq(chunks[-1].usage.completion_tokens, USAGE_OUT, "stream completion_tokens")


def openai_responses_create():
    prompt = "responses create"
    r = oai().responses.create(model=MODELS["responses"], input=prompt)
    eq(r.object, "response", "object")
    eq(r.status, "completed", "status")
    eq(r.model, MODELS["responses"], "model")
    eq(r.output_text, expected(prompt), "output_text")
    eq(r.usage.input_tokens, USAGE_IN, "usage.input_tokens")
    eq(r.usage.output_tokens, USAGE_OUT, "usage.output_tokens")


def openai_responses_stream():
    prompt = "responses stream"
    events = list(oai().responses.create(model=MODELS["responses"], input=prompt, stream=True))
    kinds = [e.type for e in events]
    eq(kinds[0], "response.created", "first event")
    eq(kinds[-1], "response.completed", "last event")
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1, kinds
    eq("".join(deltas), expected(prompt), "joined deltas")
    done = [e for e in events if e.type == "response.output_text.done"]
    eq([d.text for d in done], [expected(prompt)], "output_text.done")
    eq([e.sequence_number for e in events], list(range(len(events))), "sequence numbers")
    final = events[-1].response
    eq(final.status, "completed", "final status")
    eq(final.output_text, expected(prompt), "final output_text")
    eq(final.usage.output_tokens, USAGE_OUT, "final usage")


def openai_responses_stream_helper():
    # the helper rebuilds the response from the events and checks they fit together
    prompt = "responses stream helper"
    with oai().responses.stream(model=MODELS["responses"], input=prompt) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    eq("".join(deltas), expected(prompt), "joined deltas")
    eq(final.output_text, expected(prompt), "final output_text")
    eq(final.usage.input_tokens, USAGE_IN, "final usage")


def openai_models_list():
    ids = [m.id for m in oai().models.list()]
    for m in SPEC["listed"]:
        assert m in ids, f"{m} not listed: {ids}"
    for m in SPEC["unlisted"]:
        assert m not in ids, f"{m} listed: {ids}"


def openai_models_retrieve():
    check_models_retrieve(oai(), SPEC["listed"][-1], openai.NotFoundError)


def openai_byok():
    prompt = "responses byok"
    c = openai.OpenAI(
        base_url=GATEWAY + "/v1",
        api_key=BYOK_KEYS["openai"],
        default_headers={"X-Strata-Governance-Token": TOKEN},
        **COMMON,
    )
    r = c.responses.create(model=BYOK["responses"], input=prompt)
    eq(r.output_text, expected(prompt), "byok output_text")


def one_client_many_calls():
    # one client, so one pooled keep-alive connection: an answer the gateway gives before it has
    # read the request body to its end (an unknown path, a body over the limit) must close the
    # connection openly (`Connection: close`), or the client's next call on it may fail
    c = oai()
    for i in range(3):
        try:
            c.completions.create(model=MODELS["chat"], prompt="legacy completions " * 200)
        except openai.NotFoundError as e:
            assert "/v1/completions" in body_message(e), body_message(e)
            eq(e.response.headers.get("connection"), "close", "connection header of the 404")
        else:
            raise AssertionError("/v1/completions did not answer 404")
        prompt = f"after a 404, {i}"
        r = c.chat.completions.create(model=MODELS["chat"], messages=[{"role": "user", "content": prompt}])
        eq(r.choices[0].message.content, expected(prompt), "content")
    a = claude()
    for i in range(3):
        try:
            a.messages.create(model="gpt-4o", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        except anthropic.PermissionDeniedError:
            pass
        else:
            raise AssertionError("gpt-4o was not refused")
        # above the gateway's body limit (the test's gateway allows 1 MiB): refused part-read,
        # while the SDK is still sending the rest of its 1.8 or 9 MB
        try:
            a.messages.create(
                model=MODELS["anthropic"],
                max_tokens=8,
                messages=[{"role": "user", "content": "long conversation " * (100_000 if i == 0 else 500_000)}],
            )
        except anthropic.APIStatusError as e:
            eq(e.status_code, 413, "status")
            assert "larger than the gateway's limit" in body_message(e), body_message(e)
            eq(e.response.headers.get("connection"), "close", "connection header of the 413")
        else:
            raise AssertionError("a body over the limit was not refused")
        prompt = f"after a 403, {i}"
        with a.messages.stream(model=MODELS["anthropic"], max_tokens=8, messages=[{"role": "user", "content": prompt}]) as s:
            eq(s.get_final_message().content[0].text, expected(prompt), "text")


def openai_wrong_token():
    try:
        oai(token="strata_gw_not-a-token").responses.create(model=MODELS["responses"], input="x")
    except openai.AuthenticationError as e:
        eq(e.status_code, 401, "status")
        assert "gateway token" in body_message(e), body_message(e)
        return
    raise AssertionError("a wrong gateway token was accepted")


# ---- denials --------------------------------------------------------------------------------


def call(api, model, token, headers, stream):
    """One call through the SDK that speaks `api`; returns the SDK's exception class for 403"""
    msgs = [{"role": "user", "content": "denied?"}]
    byok = bool(headers.get("X-Strata-Governance-Token"))
    if api == "messages":
        key = BYOK_KEYS["anthropic"] if byok else token
        c = claude(token=key, default_headers=headers)
        if stream:
            with c.messages.stream(model=model, max_tokens=8, messages=msgs) as s:
                s.get_final_message()
        else:
            c.messages.create(model=model, max_tokens=8, messages=msgs)
        return
    key = BYOK_KEYS["openai"] if byok else token
    c = oai(token=key, default_headers=headers)
    if api == "chat":
        r = c.chat.completions.create(model=model, messages=msgs, stream=stream)
    else:
        r = c.responses.create(model=model, input="denied?", stream=stream)
    if stream:
        list(r)


def make_denial(d, stream):
    def check():
        token = SPEC[d.get("who", "token")]
        headers = {k: (TOKEN if v == "$TOKEN" else v) for k, v in d.get("headers", {}).items()}
        err_class = anthropic.PermissionDeniedError if d["api"] == "messages" else openai.PermissionDeniedError
        try:
            call(d["api"], d["model"], token, headers, stream)
        except err_class as e:
            eq(e.status_code, 403, "status")
            msg = body_message(e)
            assert d["rule"] in msg, f"rule `{d['rule']}` not in the message: {msg!r}"
            assert msg.startswith("Strata policy: "), msg
            assert d["rule"] in str(e), str(e)
            eq(e.response.headers.get("x-strata-error-source"), "policy", "error source")
            if isinstance(e, openai.APIStatusError):
                eq((e.code, e.type), ("policy_denied", "permission_error"), "openai error code, type")
            assert e.response.headers.get("x-strata-decision-id"), dict(e.response.headers)
            return
        raise AssertionError(f"{d['api']} {d['model']} was not refused with {err_class.__name__}")

    check.__name__ = f"denied {d['api']} {d['model']}{' stream' if stream else ''} ({d['rule']})"
    return check


CHECKS = [
    anthropic_messages_create,
    anthropic_messages_stream_helper,
    anthropic_messages_stream_raw_events,
    anthropic_count_tokens,
    anthropic_models_list,
    anthropic_models_retrieve,
    anthropic_byok,
    anthropic_wrong_token,
    anthropic_upstream_error,
    openai_chat_create,
    openai_chat_stream,
    openai_responses_create,
    openai_responses_stream,
    openai_responses_stream_helper,
    openai_models_list,
    openai_models_retrieve,
    openai_byok,
    openai_wrong_token,
    one_client_many_calls,
] + [make_denial(d, s) for d in SPEC["denied"] for s in (False, True)]


def main():
    print(f"sdk: anthropic {anthropic.__version__}, openai {openai.__version__}")
    failed = []
    for check in CHECKS:
        try:
            check()
        except Exception:  # noqa: BLE001 - every failure is reported, then the run fails
            failed.append(check.__name__)
            print(f"sdk: FAIL {check.__name__}", flush=True)
            traceback.print_exc()
        else:
            print(f"sdk: ok   {check.__name__}", flush=True)
    print(f"sdk: {len(CHECKS) - len(failed)} of {len(CHECKS)} checks ok" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
