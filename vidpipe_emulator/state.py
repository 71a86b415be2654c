"""Thread-safe mutable state: counters, request log, operations, stored objects.

All access goes through :class:`EmulatorState` methods, which hold one lock.
Nothing here ever stores request headers or API keys.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import ENDPOINT_KINDS, Faults


@dataclass
class RequestRecord:
    """One API request as seen by the emulator (never contains credentials)."""

    kind: str
    model: str | None
    prompt: str | None
    #: sha256 hex digest of every inline image in request order.
    image_sha256: list[str]
    #: ``generationConfig`` (generateContent) or ``parameters`` (Veo).
    config: dict[str, Any]
    timestamp: float
    path: str
    operation: str | None = None
    #: HTTP status answered, or ``None`` when the connection was dropped.
    status: int | None = None
    #: Number of inline image parts in the request (generateContent), in the order of ``image_sha256``.
    image_parts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Operation:
    """An emulated Veo long-running operation."""

    op_id: str
    name: str
    model: str
    prompt: str
    submitted_at: float
    latency_s: float
    #: ``"ok"``, ``"safety"``, ``"error"``, ``"never"`` or ``"corrupt"``.
    outcome: str
    sample_count: int
    video: Future[bytes] | None
    #: Where the clip is published in uri mode, else ``None``.
    gcs_uri: str | None
    matched_word: str | None = None
    done_returned: bool = False
    polls: int = 0
    #: Wall-clock (``time.time()``) submission and first poll that found the operation done.
    submitted_wall: float = 0.0
    seen_done_wall: float | None = None

    def is_done(self, now: float) -> bool:
        return self.outcome != "never" and now - self.submitted_at >= self.latency_s

    def timing(self) -> dict[str, Any]:
        """When it was submitted, became done and was first seen done (wall clock, s), its polls,
        and the lag from done to seen (None while no poll saw it done)."""
        done_at = None if self.outcome == "never" else self.submitted_wall + self.latency_s
        lag = None if done_at is None or self.seen_done_wall is None else self.seen_done_wall - done_at
        return {
            "name": self.name,
            "model": self.model,
            "latency_s": self.latency_s,
            "polls": self.polls,
            "submitted_at": self.submitted_wall,
            "done_at": done_at,
            "seen_done_at": self.seen_done_wall,
            "lag_s": lag,
        }


@dataclass
class _Armed:
    """Consumable one-shot faults (re-armed on configure/reset)."""

    fail: dict[str, list[int]] = field(default_factory=dict)
    drop: dict[str, int] = field(default_factory=dict)
    malformed_json: int = 0
    empty_image: int = 0
    stray_character: int = 0


def _latency_seed(seed: int) -> int:
    """The latency RNG's seed: derived from ``seed`` but apart from the fault RNG's sequence."""
    return seed * 1_000_003 + 17


class EmulatorState:
    """Counters, logs, operations and fake-GCS objects behind one lock."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(_latency_seed(seed))
        self._armed = _Armed()
        self.requests: Counter[str] = Counter()
        self.submissions_by_prompt: Counter[str] = Counter()
        self.downloads = 0
        self.peak_inflight = 0
        self.faults_injected: Counter[str] = Counter()
        self.log: list[RequestRecord] = []
        self.operations: dict[str, Operation] = {}
        self.objects: dict[tuple[str, str], Future[bytes]] = {}

    # -- lifecycle -----------------------------------------------------------
    def clear(self, seed: int, faults: Faults) -> None:
        with self._lock:
            self._rng = random.Random(seed)
            self._latency_rng = random.Random(_latency_seed(seed))
            self.requests.clear()
            self.submissions_by_prompt.clear()
            self.downloads = 0
            self.peak_inflight = 0
            self.faults_injected.clear()
            self.log.clear()
            self.operations.clear()
            self.objects.clear()
            self.arm(faults, fields=None)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)
            self._latency_rng = random.Random(_latency_seed(seed))

    def draw_latency(self, base_s: float, jitter_s: float) -> float:
        """One operation's latency: ``base_s`` plus uniform [-jitter_s, +jitter_s], at least 0."""
        with self._lock:
            offset = self._latency_rng.uniform(-jitter_s, jitter_s) if jitter_s > 0 else 0.0
        return max(0.0, base_s + offset)

    def arm(self, faults: Faults, fields: set[str] | None) -> None:
        """(Re)arm one-shot faults; ``fields=None`` arms all of them."""
        with self._lock:
            if fields is None or "fail_first" in fields:
                self._armed.fail = {k: list(v) for k, v in faults.fail_first.items()}
            if fields is None or "drop_first" in fields:
                self._armed.drop = dict(faults.drop_first)
            if fields is None or "malformed_json_first_n" in fields:
                self._armed.malformed_json = faults.malformed_json_first_n
            if fields is None or "empty_image_first_n" in fields:
                self._armed.empty_image = faults.empty_image_first_n
            if fields is None or "stray_character_first_n" in fields:
                self._armed.stray_character = faults.stray_character_first_n

    # -- fault decisions -------------------------------------------------------
    def count_request(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def take_transport_fault(self, kind: str, faults: Faults) -> str | int | None:
        """Decide ``"drop"``, an HTTP status, or ``None`` for one request."""
        with self._lock:
            if self._armed.drop.get(kind, 0) > 0:
                self._armed.drop[kind] -= 1
                self.faults_injected[f"drop:{kind}"] += 1
                return "drop"
            queue = self._armed.fail.get(kind)
            if queue:
                code = queue.pop(0)
                self.faults_injected[f"{code}:{kind}"] += 1
                return code
            # Always draw both numbers so the sequence only depends on the seed.
            r429, r503 = self._rng.random(), self._rng.random()
            if r429 < faults.rate_429:
                self.faults_injected[f"429:{kind}"] += 1
                return 429
            if r503 < faults.rate_503:
                self.faults_injected[f"503:{kind}"] += 1
                return 503
            return None

    def take_malformed_json(self) -> bool:
        with self._lock:
            if self._armed.malformed_json > 0:
                self._armed.malformed_json -= 1
                self.faults_injected["malformed_json"] += 1
                return True
            return False

    def take_empty_image(self) -> bool:
        with self._lock:
            if self._armed.empty_image > 0:
                self._armed.empty_image -= 1
                self.faults_injected["empty_image"] += 1
                return True
            return False

    def take_stray_character(self) -> bool:
        with self._lock:
            if self._armed.stray_character > 0:
                self._armed.stray_character -= 1
                self.faults_injected["stray_character"] += 1
                return True
            return False

    # -- records ---------------------------------------------------------------
    def add_record(self, record: RequestRecord) -> None:
        with self._lock:
            self.log.append(record)

    def add_operation(self, op: Operation) -> None:
        with self._lock:
            self.operations[op.op_id] = op
            self.submissions_by_prompt[op.prompt] += 1
            self.peak_inflight = max(self.peak_inflight, self._inflight_locked())

    def expire_operations(self) -> int:
        with self._lock:
            count = len(self.operations)
            for op in self.operations.values():
                op.done_returned = True  # no longer in flight
            self.operations.clear()
            self.objects.clear()
            return count

    def finish_operations(self) -> int:
        with self._lock:
            pending = [op for op in self.operations.values() if not op.done_returned and op.outcome != "never"]
            for op in pending:
                op.latency_s = 0.0  # done at its next poll
            return len(pending)

    def get_operation(self, op_id: str) -> Operation | None:
        with self._lock:
            return self.operations.get(op_id)

    def mark_polled(self, op: Operation, done: bool, seen_at: float | None = None) -> None:
        """Count a poll of ``op``; ``done`` with ``seen_at``: the wall-clock time the poll found it
        done (kept for the first such poll only)."""
        with self._lock:
            op.polls += 1
            if done:
                op.done_returned = True
                if op.seen_done_wall is None:
                    op.seen_done_wall = seen_at if seen_at is not None else time.time()

    def operation_timings(self) -> list[dict[str, Any]]:
        """:meth:`Operation.timing` of every known operation, in submission order."""
        with self._lock:
            return [op.timing() for op in self.operations.values()]

    def put_object(self, bucket: str, name: str, data: Future[bytes]) -> None:
        with self._lock:
            self.objects[(bucket, name)] = data

    def get_object(self, bucket: str, name: str) -> Future[bytes] | None:
        with self._lock:
            return self.objects.get((bucket, name))

    def count_download(self) -> None:
        with self._lock:
            self.downloads += 1

    # -- views -----------------------------------------------------------------
    def _inflight_locked(self) -> int:
        return sum(1 for op in self.operations.values() if not op.done_returned)

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight_locked()

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.log)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {k: self.requests.get(k, 0) for k in ENDPOINT_KINDS},
                "requests_total": sum(self.requests.values()),
                "submissions_by_prompt": dict(self.submissions_by_prompt),
                "inflight": self._inflight_locked(),
                "peak_inflight": self.peak_inflight,
                "operations": len(self.operations),
                "downloads": self.downloads,
                "faults_injected": dict(self.faults_injected),
                "armed": {
                    "fail_first": {k: list(v) for k, v in self._armed.fail.items() if v},
                    "drop_first": {k: v for k, v in self._armed.drop.items() if v},
                    "malformed_json_first_n": self._armed.malformed_json,
                    "empty_image_first_n": self._armed.empty_image,
                    "stray_character_first_n": self._armed.stray_character,
                },
                "image_parts": sum(r.image_parts for r in self.log if r.kind == "image"),
                "log_size": len(self.log),
                "time": time.time(),
            }
