"""A local stand-in for Slack's external file upload, for driving the real slack-sdk `WebClient`
(`files_upload_v2`) in tests: files.getUploadURLExternal -> POST to the upload URL ->
files.completeUploadExternal. stdlib `http.server` in a thread on 127.0.0.1 (free port); it
records every request and the files it received. (chat.postMessage lives in fake_slack.py.)"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class UploadedFile:
    file_id: str
    filename: str
    declared_length: int
    alt_txt: str | None
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None


@dataclass
class FakeSlackFilesState:
    token: str
    channels: set[str]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, params)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    completed: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeSlackFiles:
    def __init__(self, token: str = "xoxb-fake-token", channels: tuple[str, ...] = ("C0REPORTS",)) -> None:
        self.state = FakeSlackFilesState(token=token, channels=set(channels))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def __enter__(self) -> FakeSlackFiles:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(state: FakeSlackFilesState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: dict[str, Any]) -> None:
            self._reply(200, json.dumps(data).encode())

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path.startswith("/upload/"):
                self._upload(url.path.removeprefix("/upload/"), raw)
                return
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            if raw and "json" in (self.headers.get("Content-Type") or ""):
                params.update({k: str(v) for k, v in json.loads(raw).items()})
            elif raw:
                params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            method = url.path.removeprefix("/api/")
            with state.lock:
                state.requests.append((method, params))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._json({"ok": False, "error": "invalid_auth"})
            elif method == "files.getUploadURLExternal":
                self._get_upload_url(params)
            elif method == "files.completeUploadExternal":
                self._complete(params)
            else:
                self._json({"ok": False, "error": "unknown_method"})

        def _get_upload_url(self, params: dict[str, str]) -> None:
            if not params.get("filename") or not params.get("length", "").isdigit():
                self._json({"ok": False, "error": "invalid_arguments"})
                return
            with state.lock:
                file_id = f"F{next(state.ids):06d}"
                state.files[file_id] = UploadedFile(file_id, params["filename"], int(params["length"]),
                                                    params.get("alt_txt"))
            self._json({"ok": True, "file_id": file_id, "upload_url": f"http://{self.headers['Host']}/upload/{file_id}"})

        def _upload(self, file_id: str, raw: bytes) -> None:
            with state.lock:
                f = state.files.get(file_id)
                if f is None:
                    self._reply(404, b"unknown upload", "text/plain")
                    return
                f.data = raw
            self._reply(200, f"OK - {len(raw)}".encode(), "text/plain")

        def _complete(self, params: dict[str, str]) -> None:
            files = json.loads(params.get("files", "[]"))
            channel = params.get("channel_id")
            with state.lock:
                if channel is not None and channel not in state.channels:
                    self._json({"ok": False, "error": "channel_not_found"})
                    return
                out = []
                for item in files:
                    f = state.files.get(item.get("id", ""))
                    if f is None or f.data is None or len(f.data) != f.declared_length:
                        self._json({"ok": False, "error": "file_upload_size_mismatch_or_missing"})
                        return
                    f.title, f.channel_id = item.get("title"), channel
                    out.append({"id": f.file_id, "name": f.filename, "title": f.title, "size": len(f.data)})
                state.completed.append(params)
            self._json({"ok": True, "files": out})

    return Handler
