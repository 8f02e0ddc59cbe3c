"""A local stand-in for the Slack Web API, for driving the real slack-sdk `WebClient` in tests.

stdlib `http.server` in a thread on 127.0.0.1 (free port). It records every request, keeps the
messages it accepted (with metadata, threads and edits) and can be scripted to fail:
`fail(n, status=429, retry_after=1)`, `fail(n, status=500)`, `slow(n, delay)` (processes the
request, then answers late: the client times out although the message was posted),
`disconnect(n)` (processes, then closes the socket without an answer), `outage(True/False)`.
Only the methods the alert pipeline uses exist: chat.postMessage, chat.update,
conversations.history, conversations.replies, conversations.list (paged; `missing_scopes` makes it
refuse), auth.test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CHANNEL_IDS = {"#agent-alerts": "C0AGENTS", "#team-payments": "C0PAYMENTS", "#oncall": "C0ONCALL"}


@dataclass
class Recorded:
    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float  # time.monotonic() on arrival
    status: int = 200


@dataclass
class Fault:
    kind: str  # "status" | "slow" | "disconnect"
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    methods: tuple[str, ...] = ("chat.postMessage", "chat.update")


@dataclass
class FakeSlackState:
    token: str
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel id -> messages
    faults: deque[Fault] = field(default_factory=deque)
    down: bool = False
    down_status: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_ts: float = 0.0
    missing_scopes: set[str] = field(default_factory=set)  # e.g. {"channels:read"}: conversations.list refuses
    list_page_size: int = 1000  # conversations.list pages (cursor = index of the next channel)


class FakeSlack:
    def __init__(self, token: str = "xoxb-fake-token") -> None:
        self.state = FakeSlackState(token=token)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting ----------------------------------------------------------------------------
    def fail(
        self,
        n: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        with self.state.lock:
            for _ in range(n):
                self.state.faults.append(
                    Fault("status", status=status, retry_after=retry_after, methods=methods or Fault.methods)
                )

    def slow(self, n: int = 1, *, delay: float) -> None:
        with self.state.lock:
            for _ in range(n):
                self.state.faults.append(Fault("slow", delay=delay))

    def disconnect(self, n: int = 1) -> None:
        with self.state.lock:
            for _ in range(n):
                self.state.faults.append(Fault("disconnect"))

    def outage(self, down: bool, status: int = 500) -> None:
        with self.state.lock:
            self.state.down = down
            self.state.down_status = status

    # --- inspection ---------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Recorded]:
        with self.state.lock:
            return [r for r in self.state.requests if method is None or r.method == method]

    def posted(self) -> list[dict[str, Any]]:
        """Every message accepted by chat.postMessage, in order (top-level and replies)."""
        with self.state.lock:
            msgs = [m for ms in self.state.messages.values() for m in ms]
        return sorted(msgs, key=lambda m: float(m["ts"]))

    def top_level(self) -> list[dict[str, Any]]:
        return [m for m in self.posted() if not m.get("thread_ts")]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.posted() if m.get("thread_ts") == ts]


def channel_id(name: str) -> str:
    if name in CHANNEL_IDS:
        return CHANNEL_IDS[name]
    if name.startswith(("C", "G")) and not name.startswith("#"):
        return name
    return "C" + str(abs(hash(name)) % 10**8)


class _Handler(BaseHTTPRequestHandler):
    state: FakeSlackState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = _parse(raw, self.headers.get("Content-Type", ""))
        method = self.path.rsplit("/", 1)[-1]
        record = Recorded(method, dict(self.headers.items()), body, raw, time.monotonic())
        st = self.state
        with st.lock:
            st.requests.append(record)
            fault = None
            if st.faults and method in st.faults[0].methods:
                fault = st.faults.popleft()
            down, down_status = st.down, st.down_status

        if down:
            record.status = down_status
            return self._reply(down_status, {"ok": False, "error": "service_unavailable"})
        if fault is not None and fault.kind == "status":
            record.status = fault.status
            headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
            error = "ratelimited" if fault.status == 429 else "internal_error"
            return self._reply(fault.status, {"ok": False, "error": error}, headers)

        if self.headers.get("Authorization") != f"Bearer {st.token}":
            return self._reply(200, {"ok": False, "error": "invalid_auth"})
        result = self._handle(method, body)

        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "disconnect":
            self.close_connection = True
            self.connection.close()
            return
        self._reply(200, result)

    def _handle(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        st = self.state
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "team_id": "T1"}
        if method == "chat.postMessage":
            if not body.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            if body["channel"] == "#nonexistent":
                return {"ok": False, "error": "channel_not_found"}
            cid = channel_id(body["channel"])
            with st.lock:
                # Slack's ts is the wall-clock time of the post, unique per channel
                st.last_ts = max(time.time(), st.last_ts + 0.000001)
                ts = f"{st.last_ts:.6f}"
                message = {
                    "ts": ts,
                    "channel": cid,
                    "text": body.get("text"),
                    "blocks": body.get("blocks"),
                    "thread_ts": body.get("thread_ts"),
                    "reply_broadcast": body.get("reply_broadcast", False),
                    "metadata": body.get("metadata"),
                    "edits": [],
                }
                st.messages.setdefault(cid, []).append(message)
            return {"ok": True, "channel": cid, "ts": ts, "message": {"text": body.get("text")}}
        if method == "chat.update":
            cid = channel_id(body.get("channel", ""))
            with st.lock:
                for message in st.messages.get(cid, []):
                    if message["ts"] == body.get("ts"):
                        message["edits"].append({"text": body.get("text"), "blocks": body.get("blocks")})
                        message["text"], message["blocks"] = body.get("text"), body.get("blocks")
                        return {"ok": True, "channel": cid, "ts": message["ts"]}
            return {"ok": False, "error": "message_not_found"}
        if method == "conversations.list":
            if "channels:read" in st.missing_scopes:
                return {"ok": False, "error": "missing_scope", "needed": "channels:read,groups:read"}
            channels = [{"id": cid, "name": name.lstrip("#")} for name, cid in CHANNEL_IDS.items()]
            start = int(body.get("cursor") or 0)
            page = channels[start : start + min(st.list_page_size, int(body.get("limit") or 1000))]
            after = start + len(page)
            cursor = str(after) if after < len(channels) else ""
            return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}
        if method in ("conversations.history", "conversations.replies"):
            cid = body.get("channel", "")
            if cid.startswith("#"):
                return {"ok": False, "error": "channel_not_found"}
            with st.lock:
                msgs = list(st.messages.get(cid, []))
            if method == "conversations.replies":
                root = body.get("ts")
                msgs = [m for m in msgs if m["ts"] == root or m.get("thread_ts") == root]
            else:
                msgs = [m for m in msgs if not m.get("thread_ts") or m.get("reply_broadcast")]
                if body.get("oldest"):
                    msgs = [m for m in msgs if float(m["ts"]) >= float(body["oldest"])]
                msgs.reverse()  # newest first, as Slack does
            include_meta = str(body.get("include_all_metadata", "")).lower() in ("true", "1")
            out = [
                {
                    "ts": m["ts"],
                    "text": m["text"],
                    **({"metadata": m["metadata"]} if include_meta and m["metadata"] else {}),
                }
                for m in msgs[: int(body.get("limit") or 100)]
            ]
            return {"ok": True, "messages": out, "has_more": False}
        return {"ok": False, "error": "unknown_method"}

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
            pass


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
