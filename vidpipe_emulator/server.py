"""The :class:`Emulator`: a threaded HTTP server speaking the Vertex AI wire format."""

from __future__ import annotations

import dataclasses
import threading
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .api import Api
from .config import Faults, Settings, apply_faults, apply_settings, split_overrides
from .handler import EmulatorHTTPServer
from .images import ImageFactory
from .state import EmulatorState, RequestRecord
from .videos import VideoFactory


class Emulator:
    """Wire-level emulator of the Vertex AI Gemini + Veo endpoints.

    ``Emulator(faults=Faults(...), image_height=144, video_latency_s=0.5)``:
    keyword overrides may name any :class:`Settings` or :class:`Faults`
    field.  ``start()`` binds 127.0.0.1 on a free port (unless ``port`` is
    given) and returns the base URL to use as ``GOOGLE_VERTEX_BASE_URL``.
    """

    def __init__(
        self,
        faults: Faults | None = None,
        settings: Settings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ) -> None:
        settings_changes, fault_changes = split_overrides(overrides)
        self._initial_settings = apply_settings(settings or Settings(), settings_changes)
        self._initial_faults = apply_faults(faults or Faults(), fault_changes)
        self.settings: Settings = self._initial_settings
        self.faults: Faults = self._initial_faults
        self._host, self._port = host, port
        self._config_lock = threading.Lock()
        self.state = EmulatorState(self.settings.seed)
        self.state.arm(self.faults, fields=None)
        self.videos = VideoFactory()
        self.images = ImageFactory()
        self.api = Api(self)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: ``server.shutdown()`` blocks forever unless serve_forever ran.
        self._serving = False

    # -- lifecycle -------------------------------------------------------------------
    def bind(self) -> str:
        """Bind the listening socket (idempotent); returns the base URL."""
        if self._server is None:
            self._server = EmulatorHTTPServer((self._host, self._port), self)
        return self.base_url

    def start(self) -> str:
        """Start serving in a daemon thread; returns ``http://127.0.0.1:PORT``."""
        if self._thread is not None and self._server is not None:
            return self.base_url
        self.bind()
        assert self._server is not None
        self._serving = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="vidpipe-emulator",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._serving:
            server.shutdown()
            self._serving = False
        server.close_open_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.videos.shutdown()
        self.videos = VideoFactory()  # allow restart

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``python -m vidpipe_emulator``)."""
        self.bind()
        assert self._server is not None
        self._serving = True
        try:
            self._server.serve_forever(poll_interval=0.1)
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- configuration -----------------------------------------------------------------
    def configure(self, **changes: Any) -> None:
        """Merge settings/fault changes (flat keys, or nested ``faults``/``settings``).

        One-shot faults named in ``changes`` are re-armed; changing ``seed``
        reseeds the fault RNG.
        """
        settings_changes, fault_changes = split_overrides(changes)
        with self._config_lock:
            new_settings = apply_settings(self.settings, settings_changes)
            new_faults = apply_faults(self.faults, fault_changes)
            self.settings, self.faults = new_settings, new_faults
            self.state.arm(new_faults, fields=set(fault_changes))
            if "seed" in settings_changes:
                self.state.reseed(new_settings.seed)

    def reset(self, settings: bool = False) -> None:
        """Clear counters, logs, operations and stored objects.

        With ``settings=True`` the settings and faults given to the
        constructor are restored too.  One-shot faults are re-armed.
        """
        with self._config_lock:
            if settings:
                self.settings, self.faults = self._initial_settings, self._initial_faults
            self.state.clear(self.settings.seed, self.faults)

    def expire_operations(self) -> int:
        """Forget every operation and its published video, as Veo does after its retention period:
        polls then answer 404 and downloads 404. Counters stay. Returns how many were dropped."""
        return self.state.expire_operations()

    def finish_operations(self) -> int:
        """End the latency of every operation not yet seen done (``never`` ones excepted): its next
        poll answers done, whatever latency it was submitted with. Lets a test skip a wait it set up
        (a long latency to kill a render mid-poll) once the wait has served. Returns how many."""
        return self.state.finish_operations()

    def config_snapshot(self) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.settings), "faults": dataclasses.asdict(self.faults)}

    # -- observation -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-compatible dict (same as ``GET /_emulator/stats``)."""
        out = self.state.snapshot()
        out["video_encodes"] = self.videos.encodes
        out["image_renders"] = self.images.renders
        out.update(self.config_snapshot())
        return out

    def operation_timings(self) -> list[dict[str, Any]]:
        """Per Veo operation (same as ``GET /_emulator/operations``): name, model, latency_s, polls,
        and wall-clock ``submitted_at``, ``done_at``, ``seen_done_at`` (the first poll that found it
        done) and ``lag_s`` = seen_done_at - done_at (None while unseen)."""
        return self.state.operation_timings()

    @property
    def requests(self) -> dict[str, int]:
        """Request count per endpoint kind (includes faulted and 401 requests)."""
        return dict(self.state.snapshot()["requests"])

    def request_count(self, kind: str) -> int:
        return self.requests.get(kind, 0)

    @property
    def request_log(self) -> list[RequestRecord]:
        return self.state.records()

    def records(self, kind: str | None = None) -> list[RequestRecord]:
        return [r for r in self.state.records() if kind is None or r.kind == kind]

    @property
    def submissions_by_prompt(self) -> dict[str, int]:
        return dict(self.state.snapshot()["submissions_by_prompt"])

    @property
    def inflight(self) -> int:
        return self.state.inflight

    @property
    def peak_inflight(self) -> int:
        return int(self.state.snapshot()["peak_inflight"])

    @property
    def downloads(self) -> int:
        return int(self.state.snapshot()["downloads"])

    def gcs_http_url(self, gcs_uri: str) -> str:
        """HTTP URL (GCS JSON API shape) serving a ``gs://`` URI from this emulator."""
        if not gcs_uri.startswith("gs://"):
            raise ValueError(f"not a gs:// URI: {gcs_uri!r}")
        bucket, _, obj = gcs_uri[len("gs://") :].partition("/")
        return f"{self.base_url}/storage/v1/b/{bucket}/o/{quote(obj, safe='')}?alt=media"
