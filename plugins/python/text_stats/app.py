"""text_stats: a tool plugin written in Python, built with componentize-py.

It shows that plugin authors are not tied to Rust: the same WIT world (`tool-plugin` in
wit/v0.2.0), a different language and toolchain. The tool counts words, sentences and
characters and lists the most frequent words of a text.
"""

import json
import re
from collections import Counter

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging
# With contract v0.2.0 the world also imports WASI's `types` interfaces (filesystem, http), so
# componentize-py names ours by its package.
from wit_world.imports.assistants_plugin_types import (
    CallContext,
    ToolError_Failed,
    ToolError_InvalidArguments,
    ToolError_UnknownTool,
    ToolOutput,
    ToolSpec,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The text to analyse."},
        "top": {"type": "integer", "minimum": 1, "maximum": 50, "description": "How many frequent words to list."},
    },
    "required": ["text"],
    "additionalProperties": False,
}

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)


class Tool(exports.Tool):
    def describe(self) -> list[ToolSpec]:
        return [
            ToolSpec(
                name="text_stats",
                description="Count words, sentences and characters of a text and list its most frequent words.",
                parameters_json=json.dumps(SCHEMA),
                strict=False,
            )
        ]

    def invoke(self, ctx: CallContext, name: str, arguments_json: str) -> ToolOutput:
        if name != "text_stats":
            raise Err(ToolError_UnknownTool(name))
        try:
            args = json.loads(arguments_json)
        except ValueError as e:
            raise Err(ToolError_InvalidArguments(f"arguments are not JSON: {e}"))
        text = args.get("text")
        top = args.get("top", 5)
        if not isinstance(text, str):
            raise Err(ToolError_InvalidArguments("'text' must be a string"))
        if not isinstance(top, int) or not 1 <= top <= 50:
            raise Err(ToolError_InvalidArguments("'top' must be an integer between 1 and 50"))
        if not text.strip():
            raise Err(ToolError_Failed("the text is empty"))
        words = [w.lower() for w in WORD.findall(text)]
        sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
        # Most frequent first, ties alphabetically, so the answer is deterministic.
        ranked = sorted(Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        frequent = ", ".join(f"{w} ({n})" for w, n in ranked)
        logging.log(logging.Level.DEBUG, f"analysed {len(words)} words for {ctx.tool_call_id}")
        return ToolOutput(
            text=f"{len(words)} words, {len(sentences)} sentences, {len(text)} characters. Most frequent: {frequent}",
            annotations=[],
        )
