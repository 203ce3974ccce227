import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx

from driftwatch.slack_sink import SlackSink, read_messages, summarize


def test_the_sink_stores_each_message_and_answers_like_slack(tmp_path: Path) -> None:
    out = tmp_path / "slack.jsonl"
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackSink(out, echo=False).handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/services/x"
        payload = {"channel": "#oncall", "attachments": [{"title": "[FIRING] HighErrorRate v2", "text": "5% errors"}]}
        assert httpx.post(url, json=payload).text == "ok"
        assert httpx.post(url, content=b"not json").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    messages = read_messages(out)
    assert [m["path"] for m in messages] == ["/services/x", "/services/x"]
    assert messages[0]["message"] == payload
    assert messages[1]["message"] == {"raw": "not json"}


def test_summary_reads_text_and_attachments() -> None:
    line = summarize({"channel": "#ml", "text": "hello", "attachments": [{"title": "T", "text": "a\nb"}]})
    assert line == "#ml | hello | T | a b"
