"""Generated PNG keyframes with a digest-keyed LRU cache.

An image is a pure function of its request (prompt, height, aspect ratio, the reference image),
so a repeated request gets the very bytes a new render would give, without rendering them again:
decoding the 768 px reference, blending and encoding a PNG cost the emulator ~45 ms of CPU per
call, on the same cores as the client it serves. The configured latency is the time to answer either
way: a render is made while it runs (handler.py).
An input image (a clip's first and last frame) is decoded once to refuse what does not decode;
the same bytes again, or the bytes of a PNG rendered here, are known to decode.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from .media import decode_image, generate_png

_CACHE_LIMIT = 256
_KNOWN_LIMIT = 4096


class ImageFactory:
    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit
        self._known: OrderedDict[str, None] = OrderedDict()  # sha256 of PNGs rendered here or decoded once
        self.renders = 0

    @staticmethod
    def cache_key(prompt: str, height: int, aspect: str | None, reference: bytes | None) -> str:
        h = hashlib.sha256()
        for part in (prompt.encode("utf-8"), str(height).encode(), (aspect or "").encode(), reference or b""):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        h.update(b"\1" if reference is not None else b"\0")
        return h.hexdigest()

    def png(self, prompt: str, height: int, aspect: str | None, reference: bytes | None = None) -> bytes:
        """``media.generate_png(prompt, height, aspect, reference)``, rendered once per distinct request."""
        key = self.cache_key(prompt, height, aspect, reference)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        data = generate_png(prompt, height, aspect, reference)  # outside the lock: requests render in parallel
        with self._lock:
            self.renders += 1
            self._cache[key] = data
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        self._remember(data)
        return data

    def _remember(self, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._known[digest] = None
            self._known.move_to_end(digest)
            while len(self._known) > _KNOWN_LIMIT:
                self._known.popitem(last=False)

    def check_decodes(self, data: bytes) -> None:
        """Raise ``media.MediaError`` (HTTP 400) unless ``data`` is an image: decoded once per
        distinct image (the bytes of a PNG this emulator rendered are known to decode)."""
        with self._lock:
            if hashlib.sha256(data).hexdigest() in self._known:
                return
        decode_image(data)
        self._remember(data)
