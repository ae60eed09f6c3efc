#!/usr/bin/env python3
"""Time to first byte of a streaming (SSE) answer, one request at a time on one keep-alive connection.

    ttfb.py URL BODY N [HEADER ...]      # HEADER as "name: value"

Prints one JSON object: the first SSE event's delay (ttfb, from the last byte of the request sent to
the first body bytes holding "data:") and the whole answer's (total), p50/p90/p99 in seconds, over N
requests after 20 warm-up ones. A raw socket and a small HTTP/1.1 reader (Content-Length or chunked),
so that the client's own cost stays small and the same for every target. Loopback only.
"""
import json
import socket
import sys
import time
from urllib.parse import urlsplit


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Conn:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.sock = None
        self.buf = b""

    def connect(self):
        self.sock = socket.create_connection(self.addr, timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep)
        head, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return head

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def one(self, request):
        """Send one request; return (status, ttfb, total, body)."""
        if self.sock is None:
            self.connect()
        t0 = time.perf_counter()
        self.sock.sendall(request)
        head = self.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        first = None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")
                    break
                body += self.exactly(size)
                self.exactly(2)
                if first is None and b"data:" in body:
                    first = time.perf_counter()
        elif "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                if first is None and b"data:" in self.buf:
                    first = time.perf_counter()
                self.fill()
            body = self.exactly(n)
        else:  # read to close
            try:
                while True:
                    if first is None and b"data:" in self.buf:
                        first = time.perf_counter()
                    self.fill()
            except ConnectionError:
                pass
            body, self.buf = self.buf, b""
            self.sock.close()
            self.sock = None
        end = time.perf_counter()
        if first is None:
            first = end
        if headers.get("connection", "").lower() == "close" and self.sock is not None:
            self.sock.close()
            self.sock = None
        return status, first - t0, end - t0, body


def main():
    url, body, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    extra = sys.argv[4:]
    u = urlsplit(url)
    req = (
        f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\ncontent-type: application/json\r\n"
        f"accept: text/event-stream\r\ncontent-length: {len(body)}\r\n"
        + "".join(h + "\r\n" for h in extra)
        + "\r\n"
    ).encode() + body
    c = Conn(u.hostname, u.port or 80)
    ttfb, total, bad = [], [], 0
    for i in range(n + 20):
        try:
            status, f, t, payload = c.one(req)
        except (OSError, ValueError) as e:
            bad += 1
            c.sock = None
            if bad > 10:
                print(json.dumps({"error": str(e)}))
                return
            continue
        if status != 200 or b"data:" not in payload:
            bad += 1
            continue
        if i >= 20:
            ttfb.append(f)
            total.append(t)
    out = {"n": len(ttfb), "bad": bad}
    for name, xs in (("ttfb", ttfb), ("total", total)):
        for p in (50, 90, 99):
            out[f"{name}_p{p}"] = pct(xs, p) if xs else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
