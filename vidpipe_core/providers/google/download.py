"""Fetching a finished Veo clip: from Cloud Storage when the operation gives a gs:// URI (the
express-mode key or an ADC bearer token), and the check that what arrived is a video whose first
frame decodes."""

from __future__ import annotations

import io
from urllib.parse import quote

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import ProviderError
from vidpipe_core.providers.google.client import _describe, _GoogleStage
from vidpipe_core.retry import status_of
from vidpipe_core.steps import CLIPS

DOWNLOAD_TIMEOUT_S = 300


def _gcs_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    bucket, _, obj = uri[5:].partition("/")
    if not bucket or not obj:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    return bucket, obj


def video_decode_error(data: bytes) -> str | None:
    """None when ``data`` is a video whose first frame decodes, else why not."""
    import av

    from vidpipe_core.media import probe_bytes

    try:
        info = probe_bytes(data, name="clip")
        if not info.video_codec or not info.width:
            return "not a decodable video (no video stream)"
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return "not a decodable video (no video stream)"
            for _ in container.decode(video=0):
                return None
            return "not a decodable video (no frames)"
    except Exception as exc:
        return f"not a decodable video ({type(exc).__name__}: {exc})"


def download_clip(stage: _GoogleStage, uri: str, scene: int, cancel: CancelToken = NEVER) -> bytes:
    """The clip at ``uri`` (gs://bucket/object) from Cloud Storage, with the stage's retries."""
    import httpx2

    try:
        bucket, obj = _gcs_parts(uri)
    except ValueError as exc:
        raise ProviderError(CLIPS, f"cannot download the clip: {exc}", scene=scene) from exc
    url = f"{stage.settings.gcs_base_url.rstrip('/')}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(obj, safe='')}"

    def fetch() -> bytes:
        headers = stage.client.download_headers()
        with httpx2.Client(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True) as http:
            response = http.get(url, params={"alt": "media"}, headers=headers)
            response.raise_for_status()
            return response.content

    def describe(exc: BaseException) -> str:
        status = status_of(exc)
        cause = f"HTTP {status}" if status is not None else _describe(exc)
        return f"downloading {uri} failed: {cause}"

    return stage._call(fetch, stage=CLIPS, scene=scene, describe=describe, cancel=cancel)
