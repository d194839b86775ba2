"""Compact EAI-Distill outputs in the model's format, and an in-process OpenAI-compatible server that answers each
document with one of them (chosen from the document's text), for the label stage's tests and benchmark.

EAI-Distill-0.5b's weights cannot be downloaded here, so these outputs were written by hand in its format (paper
Alg. 13): one per dataset the views select (math, code, medical, engineering STEM), a news page in none, and the
three ways an output goes wrong (an out-of-set code, missing lines, a cut-off answer)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import xxhash

RECORDED = {
    # FDC 512.9 algebra tutorial: eai_math
    "math": ("512.9,510.71\n3,2\n3,2\n3,4\n0,3\n0\n23,10\n3,2\n4,3\n2,3", "stop"),
    # FDC 005.133 programming documentation: eai_code and eai_stem (code branch)
    "code": ("005.133,004.6\n3,4\n3,2\n3,4\n0,3\n0,-1\n8,23\n3,4\n4,3\n3,2", "stop"),
    # FDC 616.462 with physiology 612.1, a knowledge article: eai_medical and eai_stem (medical branch)
    "medical": ("616.462,612.1\n2,4\n2,1\n3,2\n0,-1\n0,-1\n10,14\n3,2\n4,3\n3,2", "stop"),
    # FDC 621.3 electrical engineering, academic: eai_stem (engineering branch) only
    "engineering": ("621.3,530.1\n4,2\n2,3\n2,3\n0\n0\n3,10\n4,3\n4,5\n4,3", "stop"),
    # economics news, abstaining secondaries: in no dataset
    "news": ("330.9,-1\n2\n1\n1,12\n3,0\n0\n14,13\n2,1\n6\n1", "stop"),
    "invalid": ("515.33,510.71\n3,2\n9,2\n3,-1\n3,0\n0,-1\n23,10\n4,3\n4,3\n3,2", "stop"),
    "short": ("515.33,510.71\n3,2\n3,2", "stop"),
    "cut": ("515.33,510.71\n3,2\n3,2\n3,-1\n3,0\n0,-1\n23,10\n4,3\n4,3\n3,2\n3,2\n3,2", "length"),
}
EXPECTED_STATUS = {"invalid": "invalid_code", "short": "missing_category", "cut": "truncated"}
# The datasets (views) each answer puts a document in.
DATASETS = {"math": {"eai_math"}, "code": {"eai_code", "eai_stem"}, "medical": {"eai_medical", "eai_stem"},
            "engineering": {"eai_stem"}}


def answer_for(document: str) -> str:
    """Which recorded answer a document (the user turn the stage sent) gets."""
    names = sorted(RECORDED)
    return names[xxhash.xxh64_intdigest(document.encode()) % len(names)]


def serve_recorded() -> tuple[ThreadingHTTPServer, list]:
    """A threaded OpenAI-compatible server on a free port; records every request body."""
    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _reply(self, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - /v1/models, the engine's start-up check
            self._reply({"object": "list", "data": [{"id": "eai-distill-0.5b"}]})

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            document = body["messages"][-1]["content"]
            text, finish = RECORDED[answer_for(document)]
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            usage = {"prompt_tokens": 11 + len(document) // 4, "completion_tokens": 51}
            self._reply({"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen
