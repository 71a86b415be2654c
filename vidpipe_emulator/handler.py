"""HTTP layer: routing, auth, latency and transport-level faults.

Per API request the order is: classify kind -> count -> auth (401) -> log
record -> ``latency[kind]`` sleep -> ``drop_first`` -> ``fail_first`` ->
random ``rate_429``/``rate_503`` -> endpoint logic; for the content kinds (text, image, speech:
answers that depend on the request alone) the faults are decided and the answer made first, and
the latency is what is left of it, so a request is answered ``latency[kind]`` after it arrived.
Control endpoints under ``/_emulator/`` bypass auth and faults.  Header values are never logged.

The handler takes what it needs of the emulator through :class:`EmulatorHost` (a protocol that
``server.Emulator`` meets), so this module imports no ``server`` and the arrows point one way:
server -> handler -> api.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from .api import content_kind, describe
from .media import MediaError
from .state import RequestRecord
from .wire import GCS_OBJECT_RE, MODEL_METHOD_RE, OPERATION_GET_RE, BadRequest, Reply, error_reply

if TYPE_CHECKING:
    from .api import Api
    from .config import Faults, Settings
    from .state import EmulatorState

_MAX_BODY = 512 * 1024 * 1024
#: Request kinds whose answer depends on the request alone: made while their latency runs.
WORK_WITHIN_LATENCY = frozenset({"text", "image", "speech"})
#: (endpoint kind, model or None, extra routing info)
_Route = tuple[str, str | None, dict[str, str]]


class EmulatorHost(Protocol):
    """What the HTTP layer uses of the emulator (``server.Emulator``)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def faults(self) -> Faults: ...
    @property
    def state(self) -> EmulatorState: ...
    @property
    def api(self) -> Api: ...
    @property
    def request_log(self) -> list[RequestRecord]: ...
    def stats(self) -> dict[str, Any]: ...
    def operation_timings(self) -> list[dict[str, Any]]: ...
    def config_snapshot(self) -> dict[str, Any]: ...
    def configure(self, **changes: Any) -> None: ...
    def reset(self, settings: bool = False) -> None: ...
    def expire_operations(self) -> int: ...
    def finish_operations(self) -> int: ...


class _Drop(Exception):
    """Close the connection without answering."""


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    #: Headers and body are separate writes; without TCP_NODELAY each response
    #: stalls ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (it could otherwise echo request lines)."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            raise BadRequest("invalid Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _has_credentials(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        has_bearer = auth.lower().startswith("bearer ") and len(auth.strip()) > len("bearer")
        return bool(self.headers.get("x-goog-api-key")) or has_bearer

    # -- dispatch ------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            raw = self._read_body()
            if path.startswith("/_emulator/"):
                self._send(self._control(method, path, raw))
                return
            self._api(method, path, query, raw)
        except BadRequest as exc:
            self.close_connection = True  # the body may not have been consumed
            self._send(error_reply(400, str(exc)))
        except _Drop:
            self._drop()

    def _parse_json(self, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("Invalid JSON payload received. Expected an object.")
        return body

    def _route(self, method: str, path: str, body: Mapping[str, Any]) -> _Route | None:
        """(kind, model, extra) for an API path, or ``None`` if unknown."""
        match = MODEL_METHOD_RE.match(path)
        if match and method == "POST":
            model, verb = match.group("model"), match.group("method")
            if verb in ("generateContent", "streamGenerateContent"):
                return content_kind(body), model, {"verb": verb}
            if verb == "predictLongRunning":
                return "video_submit", model, {}
            if verb == "fetchPredictOperation":
                return "video_poll", model, {"operation": str(body.get("operationName") or "")}
            return None
        match = OPERATION_GET_RE.match(path)
        if match and method == "GET":
            return "video_poll", None, {"operation": path.lstrip("/")}
        match = GCS_OBJECT_RE.match(path)
        if match and method == "GET":
            target = {"bucket": unquote(match.group("bucket")), "object": unquote(match.group("object"))}
            return "download", None, target
        return None

    def _api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        emu = self.server.emulator
        body = self._parse_json(raw) if method == "POST" else {}
        route = self._route(method, path, body)
        if route is None:
            self._send(error_reply(404, f"Method not found: {method} {path}"))
            return
        kind, model, extra = route
        emu.state.count_request(kind)
        record = describe(kind, model, body, path)
        if kind == "video_poll":
            record.operation = extra.get("operation") or None
        elif kind == "download":
            record.operation = f"gs://{extra['bucket']}/{extra['object']}"
        emu.state.add_record(record)

        needs_auth = kind == "download" or emu.settings.require_api_key
        if needs_auth and not self._has_credentials():
            self._answer(record, error_reply(401))
            return
        delay = emu.faults.latency.get(kind, 0.0)
        arrived = time.monotonic()
        if kind in WORK_WITHIN_LATENCY:
            # A model's latency is the time it takes to answer, its work included: the answer (a
            # pure function of the request) is made while the latency runs, and goes out when it
            # is over (or when it is made, if that takes longer). Faults are decided as before.
            fault = emu.state.take_transport_fault(kind, emu.faults)
            reply = self._invoke(kind, model, body, path, query, extra) if fault is None else None
            time.sleep(max(0.0, delay - (time.monotonic() - arrived)))
        else:  # an operation's state changes when the request is served, after its latency
            if delay > 0:
                time.sleep(delay)
            fault = emu.state.take_transport_fault(kind, emu.faults)
            reply = self._invoke(kind, model, body, path, query, extra) if fault is None else None
        if fault == "drop":
            record.status = None
            raise _Drop()
        if isinstance(fault, int):
            self._answer(record, error_reply(fault))
            return
        assert reply is not None  # no fault: the endpoint answered
        self._answer(record, reply)

    def _answer(self, record: RequestRecord, reply: Reply) -> None:
        record.status = reply.status
        self._send(reply)

    def _invoke(
        self,
        kind: str,
        model: str | None,
        body: Mapping[str, Any],
        path: str,
        query: dict[str, str],
        extra: dict[str, str],
    ) -> Reply:
        api = self.server.emulator.api
        try:
            if kind in ("text", "image", "speech"):
                reply = api.generate_content(model or "unknown", body)
                if extra.get("verb") == "streamGenerateContent":
                    # One SSE event holding the whole answer (``?alt=sse``).
                    event = b"data: " + reply.payload() + b"\r\n\r\n"
                    return Reply(raw=event, content_type="text/event-stream")
                return reply
            if kind == "video_submit":
                return api.submit_video(model or "unknown", body, path)
            if kind == "video_poll":
                return api.poll_video(extra.get("operation"))
            return api.download(extra["bucket"], extra["object"], query.get("alt"))
        except (BadRequest, MediaError) as exc:
            return error_reply(400, str(exc))
        except Exception as exc:  # keep serving; report like a backend failure
            traceback.print_exc(file=sys.stderr)
            return error_reply(500, f"vidpipe-emulator internal error: {type(exc).__name__}: {exc}")

    # -- control endpoints -------------------------------------------------------------
    def _control(self, method: str, path: str, raw: bytes) -> Reply:
        emu = self.server.emulator
        name = path[len("/_emulator/") :].strip("/")
        if method == "GET" and name == "stats":
            return Reply(body=emu.stats())
        if method == "GET" and name == "requests":
            return Reply(body=[r.to_dict() for r in emu.request_log])
        if method == "GET" and name == "operations":
            return Reply(body=emu.operation_timings())
        if method == "GET" and name in ("config", "health"):
            return Reply(body=emu.config_snapshot() if name == "config" else {"ok": True})
        if method == "POST" and name == "config":
            try:
                emu.configure(**self._parse_json(raw))
            except (ValueError, TypeError) as exc:
                return error_reply(400, str(exc))
            return Reply(body=emu.config_snapshot())
        if method == "POST" and name == "expire":
            return Reply(body={"expired": emu.expire_operations()})
        if method == "POST" and name == "finish":
            return Reply(body={"finished": emu.finish_operations()})
        if method == "POST" and name == "reset":
            body = self._parse_json(raw)
            emu.reset(settings=bool(body.get("settings") or body.get("reset_settings")))
            return Reply(body=emu.stats())
        return error_reply(404, f"unknown control endpoint {method} {path}")


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open sockets so ``stop()`` can cut keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: EmulatorHost) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
