#!/usr/bin/env python3
"""A recording mock for exploring the Droid CLI by hand (docs/droid-observed.md): Factory's API
(whoami, organization/managed-settings) and the three provider APIs, plain and streaming.

    ORG=org.json LOG=requests.jsonl python3 tests/droid/explore-mock.py 18999

Every request becomes one JSON line in $LOG (path, headers, body up to 3,000 characters). The org
document answered at /api/organization/managed-settings is read from $ORG on each request. Words in
$MODE_FILE change answers on the fly: `nowhoami` (404 for whoami), `whoami401`, `bare` (the org
document without the {success, settings} wrapper), `ok200` (200 {} for every other /api/ path).
Not used by the tests (they have crates/cli/tests/support/upstream.rs)."""
import json, os, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ.get("LOG", "/tmp/droid-mock.jsonl")
ORG = os.environ.get("ORG")
ANSWER = os.environ.get("ANSWER", "Hello from the mock upstream")
MODE_FILE = os.environ.get("MODE_FILE", "/tmp/droid-mock.mode")  # words: nowhoami whoami401 bare ok200

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _rec(self, body):
        b = body.decode("utf-8", "replace")
        try: j = json.loads(b) if b else None
        except Exception: j = None
        rec = {"t": time.time(), "method": self.command, "path": self.path,
               "headers": dict(self.headers.items()), "len": len(body),
               "body": (j if j is not None and len(b) < 3000 else b[:3000])}
        if j is not None and isinstance(j, dict):
            rec["keys"] = list(j.keys())
            rec["stream"] = j.get("stream")
            rec["model"] = j.get("model")
        with open(LOG, "a") as f: f.write(json.dumps(rec) + "\n")
        return j
    def _send(self, code, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code); self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def _sse(self, events):
        self.send_response(200); self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache"); self.send_header("connection", "close"); self.end_headers()
        for ev, data in events:
            chunk = (f"event: {ev}\n" if ev else "") + f"data: {data if isinstance(data,str) else json.dumps(data)}\n\n"
            self.wfile.write(chunk.encode()); self.wfile.flush()
        self.close_connection = True
    def do_GET(self): self.handle_any(b"")
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        self.handle_any(self.rfile.read(n))
    def do_PUT(self): self.do_POST()
    def do_PATCH(self): self.do_POST()
    def handle_any(self, body):
        j = self._rec(body)
        p = self.path.split("?")[0]
        mode = open(MODE_FILE).read().strip() if os.path.exists(MODE_FILE) else ""
        if p.endswith("/api/cli/whoami"):
            if "nowhoami" in mode: return self._send(404, {"error": "no"})
            if "whoami401" in mode: return self._send(401, {"error": "no"})
            return self._send(200, {"userId": "user-1", "orgId": "org-1", "email": "a@b.c"})
        if p.endswith("/api/organization/managed-settings"):
            if "bare" in mode: return self._send(200, json.load(open(ORG)))
            if ORG and os.path.exists(ORG):
                return self._send(200, {"success": True, "settings": json.load(open(ORG)), "revision": 1})
            return self._send(200, {"success": True, "settings": {}, "revision": 1})
        if p.endswith("/messages"):
            model = (j or {}).get("model", "m")
            if (j or {}).get("stream"):
                mid = "msg_" + uuid.uuid4().hex[:12]
                return self._sse([
                  ("message_start", {"type":"message_start","message":{"id":mid,"type":"message","role":"assistant","model":model,"content":[],"stop_reason":None,"stop_sequence":None,"usage":{"input_tokens":10,"output_tokens":1}}}),
                  ("content_block_start", {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                  ("content_block_delta", {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":ANSWER}}),
                  ("content_block_stop", {"type":"content_block_stop","index":0}),
                  ("message_delta", {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":None},"usage":{"output_tokens":5}}),
                  ("message_stop", {"type":"message_stop"})])
            return self._send(200, {"id":"msg_1","type":"message","role":"assistant","model":model,"content":[{"type":"text","text":ANSWER}],"stop_reason":"end_turn","stop_sequence":None,"usage":{"input_tokens":10,"output_tokens":5}})
        if p.endswith("/chat/completions"):
            model = (j or {}).get("model", "m")
            if (j or {}).get("stream"):
                base = {"id":"chatcmpl-1","object":"chat.completion.chunk","created":int(time.time()),"model":model}
                return self._sse([
                  (None, {**base, "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":None}]}),
                  (None, {**base, "choices":[{"index":0,"delta":{"content":ANSWER},"finish_reason":None}]}),
                  (None, {**base, "choices":[{"index":0,"delta":{},"finish_reason":"stop"}], "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}),
                  (None, "[DONE]")])
            return self._send(200, {"id":"chatcmpl-1","object":"chat.completion","created":int(time.time()),"model":model,"choices":[{"index":0,"message":{"role":"assistant","content":ANSWER},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})
        if p.endswith("/responses"):
            model = (j or {}).get("model", "m")
            item = {"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":ANSWER,"annotations":[]}]}
            resp = {"id":"resp_1","object":"response","created_at":int(time.time()),"status":"completed","model":model,"output":[item],"usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15}}
            if (j or {}).get("stream"):
                inprog = {**resp, "status":"in_progress", "output":[]}
                return self._sse([
                  ("response.created", {"type":"response.created","sequence_number":0,"response":inprog}),
                  ("response.output_item.added", {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{**item,"status":"in_progress","content":[]}}),
                  ("response.content_part.added", {"type":"response.content_part.added","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}),
                  ("response.output_text.delta", {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":ANSWER}),
                  ("response.output_text.done", {"type":"response.output_text.done","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"text":ANSWER}),
                  ("response.content_part.done", {"type":"response.content_part.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":ANSWER,"annotations":[]}}),
                  ("response.output_item.done", {"type":"response.output_item.done","sequence_number":6,"output_index":0,"item":item}),
                  ("response.completed", {"type":"response.completed","sequence_number":7,"response":resp})])
            return self._send(200, resp)
        if "ok200" in mode and p.startswith("/api/"):
            return self._send(200, {})
        return self._send(404, {"error": "not found in mock", "path": self.path})

port = int(sys.argv[1]) if len(sys.argv) > 1 else 18999
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
