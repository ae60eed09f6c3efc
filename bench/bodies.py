#!/usr/bin/env python3
"""Request bodies for the benchmarks' body profiles (bench/gateway.sh, bench/compare.sh).

    python3 bench/bodies.py PROFILE API MODE MODEL OUT
        PROFILE  tiny | droid | sdk | long
        API      messages (Anthropic Messages) | responses (OpenAI Responses) | chat (Chat Completions)
        MODE     json | sse  (sse: "stream": true)
        MODEL    the model id the body names
        OUT      the file to write

- tiny: the 90-byte request the benchmarks used until December 2026.
- droid: about 40 KB, shaped like the bodies Droid 0.225.2 sends (seen 2026-12-03, one `droid exec`
  per API against a recorder): the same top-level keys in the same order (Messages and Responses
  with `model` first, Chat Completions with `messages` first and `model` second), 8 tools whose
  JSON schemas make up ~26 KB, a ~4 KB system prompt, ~11-15 KB of conversation with tool calls
  and results. The text is generated (deterministic), not Droid's.
- sdk: the same content, `model` as the last key (how the official SDKs' bodies can arrive), so a
  gateway must read the whole body before it knows the model.
- long: a 1 MB conversation (many turns, tool results) with a base64 PNG-sized image, `model` last.

Every body is valid JSON with strings that need escaping (quotes, newlines, backslashes, non-ASCII),
as real prompts do.
"""

import base64
import json
import random
import sys

WORDS = (
    "the repository build test file function module error change review commit branch "
    "config value return type struct field import export async await request response "
    "gateway resolver policy project folder user model token server client stream"
).split()


def text(rng, n_bytes, code=False):
    """About n_bytes of prose (or code), with characters JSON must escape"""
    out, size = [], 0
    while size < n_bytes:
        if code and rng.random() < 0.3:
            line = f'    let {rng.choice(WORDS)} = "{rng.choice(WORDS)}\\n"; // {rng.choice(WORDS)} \u00e9\n'
        else:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16)))
            line = line.capitalize() + rng.choice([".", ".", ":", '? "quoted"', " — ok."]) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out)


def schema(rng, target_bytes):
    """A JSON schema of about target_bytes: typed properties with descriptions, an enum, a nested
    object, an array"""
    props = {}
    while len(json.dumps(props)) < target_bytes - 120:
        i = len(props)
        name = f"{rng.choice(WORDS)}_{i}"
        p = {"type": ["string", "integer", "boolean", "array", "object"][i % 5],
             "description": text(rng, rng.randint(120, 360)).strip()}
        if p["type"] == "array":
            p["items"] = {"type": "string"}
        elif p["type"] == "object":
            p["properties"] = {"path": {"type": "string"}, "recursive": {"type": "boolean"}}
        elif p["type"] == "string" and i % 2:
            p["enum"] = rng.sample(WORDS, 4)
        props[name] = p
    return {"type": "object", "properties": props, "required": list(props)[:2], "additionalProperties": False}


TOOL_NAMES = ["Read", "LS", "Execute", "Grep", "Glob", "ToolSearch", "Skill", "ConnectorSearch"]


def tools(rng, api, target_bytes=24_000):
    per = target_bytes // len(TOOL_NAMES)
    out = []
    for name in TOOL_NAMES:
        desc = text(rng, per // 3).strip()
        params = schema(rng, per - per // 3)
        if api == "messages":
            out.append({"name": name, "description": desc, "input_schema": params})
        elif api == "responses":
            out.append({"type": "function", "name": name, "description": desc, "parameters": params, "strict": False})
        else:
            out.append({"type": "function", "function": {"name": name, "description": desc, "parameters": params}})
    return out


def conversation(rng, api, target_bytes, image=None):
    """Turns of user text, assistant tool calls and tool results, about target_bytes"""
    msgs, size, i = [], 0, 0
    first = text(rng, 1500)
    if image is not None:
        if api == "messages":
            msgs.append({"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                {"type": "text", "text": first}]})
        elif api == "responses":
            msgs.append({"role": "user", "content": [
                {"type": "input_image", "image_url": f"data:image/png;base64,{image}"},
                {"type": "input_text", "text": first}]})
        else:
            msgs.append({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
                {"type": "text", "text": first}]})
        size += len(image) + len(first)
    else:
        msgs.append({"role": "user", "content": first})
    while size < target_bytes:
        call_id = f"call_{i:04d}"
        args = {"file_path": f"/src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.rs"}
        result = text(rng, rng.randint(800, 2400), code=True)
        if api == "messages":
            msgs.append({"role": "assistant", "content": [
                {"type": "text", "text": text(rng, 200)},
                {"type": "tool_use", "id": call_id, "name": "Read", "input": args}]})
            msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call_id, "content": result}]})
        elif api == "responses":
            msgs.append({"type": "function_call", "call_id": call_id, "name": "Read", "arguments": json.dumps(args)})
            msgs.append({"type": "function_call_output", "call_id": call_id, "output": result})
        else:
            msgs.append({"role": "assistant", "content": text(rng, 200), "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "Read", "arguments": json.dumps(args)}}]})
            msgs.append({"role": "tool", "tool_call_id": call_id, "content": result})
        size += len(json.dumps(msgs[-2])) + len(json.dumps(msgs[-1]))
        i += 1
    msgs.append({"role": "user", "content": "Say hello."})
    return msgs


def body(profile, api, mode, model):
    stream = mode == "sse"
    if profile == "tiny":
        b = {"model": model}
        if api == "messages":
            b["max_tokens"] = 256
        if stream:
            b["stream"] = True
        key = "input" if api == "responses" else "messages"
        b[key] = "Say hello." if api == "responses" else [{"role": "user", "content": "Say hello."}]
        return b
    # droid and sdk: the same content, only the key order differs
    rng = random.Random(f"{'long' if profile == 'long' else 'droid'}-{api}")
    if profile == "long":
        image = base64.b64encode(random.Random("image").randbytes(300_000)).decode()
        convo = conversation(rng, api, 1_000_000 - 34_000, image)
    else:
        convo = conversation(rng, api, 9_500 if api == "chat" else 8_500)
    system = text(rng, 4_200)
    t = tools(rng, api)
    if api == "messages":
        b = {"model": model, "max_tokens": 32000, "messages": convo, "tools": t,
             "system": [{"type": "text", "text": system}], "thinking": {"type": "enabled", "budget_tokens": 4000},
             "stream": stream}
    elif api == "responses":
        b = {"model": model, "input": convo, "store": False, "tools": t, "instructions": system, "stream": stream,
             "tool_choice": "auto", "parallel_tool_calls": True, "include": ["reasoning.encrypted_content"],
             "reasoning": {"effort": "medium", "summary": "auto"}, "prompt_cache_key": "bench-session-0001"}
    else:
        b = {"messages": [{"role": "system", "content": system}] + convo, "model": model, "tools": t,
             "stream": stream, "max_tokens": 32000, "temperature": 1, "reasoning_effort": "medium"}
        if stream:
            b["stream_options"] = {"include_usage": True}
    if not stream:
        del b["stream"]
    if profile in ("sdk", "long"):
        b["model"] = b.pop("model")
    return b


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    profile, api, mode, model, out = sys.argv[1:]
    if profile not in ("tiny", "droid", "sdk", "long") or api not in ("messages", "responses", "chat") \
            or mode not in ("json", "sse"):
        sys.exit(__doc__)
    text_ = json.dumps(body(profile, api, mode, model), ensure_ascii=False, separators=(",", ":"))
    with open(out, "w", encoding="utf-8") as f:
        f.write(text_)


if __name__ == "__main__":
    main()
