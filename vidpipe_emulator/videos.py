"""Background MP4 rendering with a digest-keyed cache.

Clips start rendering at submit time on a small thread pool, so the encode
overlaps the emulated Veo latency; the first done-poll waits on the future.
Identical requests share one future (and thus one encode).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from .media import VideoSpec, generate_mp4

_CACHE_LIMIT = 64


class VideoFactory:
    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpipe-emu-video")
        self._cache: OrderedDict[str, Future[bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.encodes = 0

    def render(self, spec: VideoSpec) -> Future[bytes]:
        key = spec.cache_key()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not (cached.done() and cached.exception() is not None):
                self._cache.move_to_end(key)
                return cached
            future = self._pool.submit(generate_mp4, spec)
            self.encodes += 1
            self._cache[key] = future
            while len(self._cache) > _CACHE_LIMIT:
                self._cache.popitem(last=False)
            return future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def completed(data: bytes) -> Future[bytes]:
    """A future that already holds ``data`` (for corrupt payloads)."""
    future: Future[bytes] = Future()
    future.set_result(data)
    return future
