"""A deterministic OpenAI-compatible chat-completions server for the SDK suites (stdlib only).

The SDK suites cannot script replies per request, so this upstream answers by content:
  * the last message is from the user, it mentions "weather" and tools are offered (among them
    `get_weather`, or any tools but `file_search`)           -> one `get_weather` call
    (arguments {"city": "Paris"}), streamed in fragments;
  * otherwise, the last message is from the user, contains an http(s) URL and a function named
    `web_fetch` is offered (the server's web_retrieval tool)  -> one `web_fetch` call
    (arguments {"url": <the first URL>}), streamed in fragments;
  * otherwise, the last message is from the user, starts with "python:" and a function named
    `code_interpreter` is offered                             -> one `code_interpreter` call
    (arguments {"code": <the rest of the message>}), streamed in fragments;
  * otherwise, the last message is from the user, reads "mcp: NAME {json}" and a function NAME
    is offered (a tool of an MCP server)                     -> one NAME call with those
    arguments, streamed in fragments;
  * otherwise, the last message is from the user and a function named `file_search` is offered
                                                              -> one `file_search` call
    (arguments {"query": <last user message>}), streamed in fragments;
  * the last message is a tool result starting with a citation label `【…】` (what the server's
    file_search and web_fetch tools answer)                   -> "Found it 【…】." quoting the
    first label exactly;
  * the last message is any other tool result                 -> "Tool said: <output>";
  * a `json_schema` response format is asked for              -> the smallest JSON document the
    schema accepts (strings "echo", numbers 0, booleans false, one item per array);
  * anything else                                             -> "echo: <last user message>".
Text answers to a last user message starting with "think:" stream reasoning first
(`reasoning_content`: "Thinking about <the rest>."), as reasoning models behind vLLM do.
Answers stream word by word, end with a usage chunk (when asked) and `data: [DONE]`. With
FAKE_LLM_CHUNK_DELAY_MS set, chunks are written one at a time with that pause between them (the
topology fault test uses it so that kills land mid-stream).

Usage: python3 fake_llm.py PORT
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-sdk",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def offered_functions(body: dict) -> set[str]:
    return {
        (t.get("function") or {}).get("name")
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type", "function") == "function"
    }


def content_text(content) -> str:
    """A message's content as text (a string, or an array of text parts)."""
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def citation_label(output: str) -> str | None:
    """The label a file_search result starts with (`【0:0†notes.txt】`), if it starts with one."""
    if output.startswith("\u3010"):
        end = output.find("\u3011")
        if end > 0:
            return output[: end + 1]
    return None


URL = re.compile(r"https?://[^\s<>\"'\u3010\u3011]+")


def first_url(text: str) -> str | None:
    """The first http(s) URL in `text`, without trailing sentence punctuation."""
    found = URL.search(text)
    return found.group(0).rstrip(".,;:!?)]}") if found else None


def mcp_call(text: str, offered: set[str]) -> tuple[str, str] | None:
    """("NAME", arguments) for "mcp: NAME {json}" when NAME is offered."""
    if not text.startswith("mcp:"):
        return None
    name, _, args = text[len("mcp:"):].strip().partition(" ")
    if name not in offered:
        return None
    return name, json.dumps(json.loads(args or "{}"))


def tool_call(model: str, call_id: str, name: str, args: str, cuts: tuple[int, ...] = (5,)) -> list[dict]:
    """One tool call streamed in fragments split at `cuts`: the first names the call, later ones
    add argument fragments."""
    bounds = [0, *(min(c, len(args)) for c in cuts), len(args)]
    parts = [args[a:b] for a, b in zip(bounds, bounds[1:])]
    out = [chunk(model, {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                         "function": {"name": name, "arguments": parts[0]}}]})]
    out += [chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in parts[1:]]
    out.append(chunk(model, {}, "tool_calls"))
    return out


def instance(schema: dict, defs: dict) -> object:
    """The smallest document `schema` accepts (the subset structured outputs use)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return instance(defs.get(ref[len("#/$defs/"):], {}), defs)
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return instance(schema[key][0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: instance(v, defs) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance(schema.get("items") or {}, defs)]
    return {"string": "echo", "integer": 0, "number": 0, "boolean": False}.get(kind)


def reply(body: dict) -> list[dict]:
    model = body.get("model", "")
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    offered = offered_functions(body)
    out = [chunk(model, {"role": "assistant", "content": ""})]
    from_user = last.get("role") == "user"
    wants_weather = (
        body.get("tools")
        and from_user
        and "weather" in content_text(last_user).lower()
        and ("get_weather" in offered or "file_search" not in offered)
    )
    if wants_weather:
        out += tool_call(model, "up_0", "get_weather", json.dumps({"city": "Paris"}))
    elif from_user and "web_fetch" in offered and first_url(content_text(last.get("content"))):
        args = json.dumps({"url": first_url(content_text(last.get("content")))})
        # Three fragments, so that one boundary falls inside the URL.
        out += tool_call(model, "up_wf_0", "web_fetch", args, cuts=(5, 5 + (len(args) - 5) // 2))
    elif (
        from_user
        and "code_interpreter" in offered
        and content_text(last.get("content")).startswith("python:")
    ):
        code = content_text(last.get("content"))[len("python:"):].strip()
        args = json.dumps({"code": code})
        # Fragment boundaries inside the code (and inside an escape, where there is one).
        out += tool_call(model, "up_ci_0", "code_interpreter", args, cuts=(5, 14, 21))
    elif from_user and mcp_call(content_text(last.get("content")), offered):
        name, args = mcp_call(content_text(last.get("content")), offered)
        out += tool_call(model, "up_mcp_0", name, args, cuts=(4,))
    elif from_user and "file_search" in offered:
        args = json.dumps({"query": content_text(last_user)})
        # Three fragments, so that one boundary falls inside the query string.
        out += tool_call(model, "up_fs_0", "file_search", args, cuts=(5, 5 + (len(args) - 5) // 2))
    else:
        label = citation_label(content_text(last.get("content"))) if last.get("role") == "tool" else None
        fmt = body.get("response_format") or {}
        if label is not None:
            text = f"Found it {label}."
        elif fmt.get("type") == "json_schema" and last.get("role") != "tool":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            text = json.dumps(instance(schema, schema.get("$defs") or {}))
        elif last.get("role") == "tool":
            text = f"Tool said: {last.get('content')}"
        else:
            text = f"echo: {last_user}"
        asked = content_text(last_user)
        if from_user and asked.startswith("think:"):
            for word in f"Thinking about {asked[len('think:'):].strip()}.".split(" "):
                out.append(chunk(model, {"reasoning_content": word + " "}))
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
        delay = int(os.environ.get("FAKE_LLM_CHUNK_DELAY_MS", "0")) / 1000
        if delay:
            # Close-delimited body, written chunk by chunk.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for c in reply(body):
                    self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(delay)
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        payload = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in reply(body)) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
