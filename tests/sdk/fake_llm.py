"""A deterministic OpenAI-compatible chat-completions server for the SDK suites (stdlib only).

The SDK suites cannot script replies per request, so this upstream answers by content:
  * tools offered and the last user message mentions "weather" -> one `get_weather` call
    (arguments {"city": "Paris"}), streamed in fragments;
  * the last message is a tool result                         -> "Tool said: <output>";
  * anything else                                             -> "echo: <last user message>".
Answers stream word by word, end with a usage chunk (when asked) and `data: [DONE]`.

Usage: python3 fake_llm.py PORT
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-sdk",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def reply(body: dict) -> list[dict]:
    model = body.get("model", "")
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    out = [chunk(model, {"role": "assistant", "content": ""})]
    if body.get("tools") and last.get("role") == "user" and "weather" in last_user.lower():
        args = json.dumps({"city": "Paris"})
        out.append(chunk(model, {"tool_calls": [{"index": 0, "id": "up_0", "type": "function",
                                                  "function": {"name": "get_weather", "arguments": args[:5]}}]}))
        out.append(chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": args[5:]}}]}))
        out.append(chunk(model, {}, "tool_calls"))
    else:
        text = f"Tool said: {last.get('content')}" if last.get("role") == "tool" else f"echo: {last_user}"
        for word in text.split(" "):
            out.append(chunk(model, {"content": word + " "}))
        out.append(chunk(model, {}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        out.append({"id": "chatcmpl-sdk", "object": "chat.completion.chunk", "created": 0, "model": model,
                    "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        payload = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in reply(body)) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
