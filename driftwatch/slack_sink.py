"""A local stand-in for Slack's incoming webhook: stores each message as a JSON line and prints it.

`driftwatch up` points Alertmanager's Slack receivers here when no real Slack URL is configured,
so a newcomer sees the notifications on-call would get.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from driftwatch.clock import iso_utc


def summarize(message: dict[str, Any]) -> str:
    """One readable line from a Slack payload (text, or the first attachment's title and text)."""
    parts: list[str] = []
    if message.get("channel"):
        parts.append(str(message["channel"]))
    if message.get("text"):
        parts.append(str(message["text"]))
    for attachment in message.get("attachments") or []:
        for key in ("title", "text"):
            if attachment.get(key):
                parts.append(str(attachment[key]))
    return " | ".join(p.replace("\n", " ") for p in parts)[:500]


class SlackSink:
    def __init__(self, out: Path, *, echo: bool = True) -> None:
        self.out = out
        self.echo = echo
        self.lock = threading.Lock()
        out.parent.mkdir(parents=True, exist_ok=True)

    def record(self, path: str, body: bytes) -> None:
        try:
            message = json.loads(body or b"{}")
        except json.JSONDecodeError:
            message = {"raw": body.decode(errors="replace")}
        entry = {"received_at": iso_utc(), "path": path,
                 "message": message}
        with self.lock, self.out.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.echo:
            print(f"[slack] {summarize(message)}", flush=True)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.record(self.path, self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"slack sink\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def read_messages(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9199)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), SlackSink(args.out).handler())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
