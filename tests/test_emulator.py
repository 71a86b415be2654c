"""The Vertex AI emulator, driven through the real google-genai SDK (no mocks).

Note: always keep the ``genai.Client`` in a variable while using it -
``genai.Client().models.generate_content(...)`` can fail with "client has
been closed" because ``Client.__del__`` closes the shared transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import pydantic
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.emulator_fixtures import GoogleEnv  # fixtures come from conftest (pytest_plugins)
from vidpipe_emulator import Emulator, Faults
from vidpipe_emulator.schema import generate_from_schema

TEXT_MODEL = "gemini-2.5-flash"
IMAGE_MODEL = "gemini-2.5-flash-image"
VIDEO_MODEL = "veo-3.1-fast-generate-001"
REPO_ROOT = Path(__file__).resolve().parents[1]


# -- helpers --------------------------------------------------------------------------


class Scene(pydantic.BaseModel):
    title: str
    description: str = pydantic.Field(min_length=5)
    duration_seconds: int = pydantic.Field(ge=4, le=8)
    mood: Literal["calm", "tense"]
    camera: str | None = None


class Storyboard(pydantic.BaseModel):
    title: str
    scenes: list[Scene]


def _retrying_client(attempts: int = 3) -> genai.Client:
    # jitter defaults to 1 s in HttpRetryOptions; zero it to keep tests fast.
    retry = types.HttpRetryOptions(attempts=attempts, initial_delay=0.01, max_delay=0.05, jitter=0)
    return genai.Client(http_options=types.HttpOptions(retry_options=retry))


def _image(client: genai.Client, prompt: str, aspect: str | None = "16:9", ref: bytes | None = None) -> bytes:
    contents: list[Any] = [prompt]
    if ref is not None:
        contents = [types.Part.from_bytes(data=ref, mime_type="image/png"), prompt]
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=aspect) if aspect else None,
    )
    response = client.models.generate_content(model=IMAGE_MODEL, contents=contents, config=config)
    parts = response.candidates[0].content.parts
    data = parts[0].inline_data.data if parts and parts[0].inline_data else None
    assert data is not None, "no image part"
    return data


def _submit(
    client: genai.Client,
    prompt: str,
    image: bytes | None = None,
    last: bytes | None = None,
    duration: int = 2,
    audio: bool = False,
) -> types.GenerateVideosOperation:
    source = types.GenerateVideosSource(
        prompt=prompt, image=types.Image(image_bytes=image, mime_type="image/png") if image else None
    )
    config = types.GenerateVideosConfig(
        last_frame=types.Image(image_bytes=last, mime_type="image/png") if last else None,
        duration_seconds=duration,
        aspect_ratio="16:9",
        generate_audio=audio,
    )
    return client.models.generate_videos(model=VIDEO_MODEL, source=source, config=config)


def _wait(client: genai.Client, op: types.GenerateVideosOperation, timeout: float = 20) -> types.GenerateVideosOperation:
    deadline = time.monotonic() + timeout
    while not op.done:
        assert time.monotonic() < deadline, "operation did not finish"
        time.sleep(0.05)
        op = client.operations.get(op)
    return op


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def _decode(video: bytes) -> tuple[av.container.InputContainer, list[np.ndarray]]:
    container = av.open(io.BytesIO(video))
    frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]
    return container, frames


def _http(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- generateContent: text ----------------------------------------------------------------


def test_storyboard_via_pydantic_response_schema(google_env: GoogleEnv) -> None:
    client = google_env.client()
    response = client.models.generate_content(
        model=TEXT_MODEL,
        contents="Write a storyboard about a fox in the snow with exactly 5 scenes.",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Storyboard),
    )
    board = response.parsed
    assert isinstance(board, Storyboard)
    assert len(board.scenes) == 5
    descriptions = [s.description for s in board.scenes]
    assert len(set(descriptions)) == 5 and all("fox" in d for d in descriptions)
    assert response.usage_metadata.total_token_count == (
        response.usage_metadata.prompt_token_count + response.usage_metadata.candidates_token_count
    )
    assert response.model_version == TEXT_MODEL
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_storyboard_via_response_json_schema_with_refs(google_env: GoogleEnv) -> None:
    schema = Storyboard.model_json_schema()
    assert "$defs" in schema  # the interesting case: $ref resolution
    client = google_env.client()
    response = client.models.generate_content(
        model=TEXT_MODEL,
        contents="A lighthouse keeper's day, exactly 3 scenes please",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema),
    )
    board = Storyboard.model_validate_json(response.text)
    assert len(board.scenes) == 3


def test_openapi_dict_schema_and_scene_count_from_system_instruction(google_env: GoogleEnv) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "scenes": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {
                        "index": {"type": "INTEGER"},
                        "shot": {"type": "STRING", "enum": ["wide", "close"]},
                        "weight": {"type": "NUMBER", "minimum": 0.5},
                        "ok": {"type": "BOOLEAN"},
                    },
                    "required": ["index", "shot"],
                },
            },
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2},
        },
    }
    client = google_env.client()
    response = client.models.generate_content(
        model=TEXT_MODEL,
        contents="a short film",
        config=types.GenerateContentConfig(
            system_instruction="Always produce exactly 4 scenes.",
            response_mime_type="application/json",
            response_schema=schema,
        ),
    )
    value = json.loads(response.text)
    assert [s["index"] for s in value["scenes"]] == [1, 2, 3, 4]
    assert {s["shot"] for s in value["scenes"]} == {"wide"}
    assert all(s["weight"] >= 0.5 and s["ok"] is True for s in value["scenes"])
    assert len(value["tags"]) == 2 and value["tags"][0] != value["tags"][1]


def test_schema_generator_handles_json_schema_features() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"], "minLength": 3, "maxLength": 40},
            "when": {"type": "string", "format": "date-time"},
            "count": {"type": "integer", "exclusiveMinimum": 0, "maximum": 3},
            "kind": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Kind"}]},
            "fixed": {"const": "x"},
            "both": {"allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"extra": {"type": "boolean"}}}]},
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 5},
            "capped": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
        },
        "$defs": {
            "Kind": {"type": "string", "enum": ["alpha", "beta"]},
            "Base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 10}}},
        },
    }
    value = generate_from_schema(schema, "a prompt")
    assert 3 <= len(value["name"]) <= 40
    assert value["when"] == "2024-01-01T00:00:00Z"
    assert value["count"] == 1 and value["kind"] == "alpha" and value["fixed"] == "x"
    assert value["both"] == {"id": 10, "extra": True}
    assert value["items"] == [1, 2]  # minItems items, distinct
    assert len(value["capped"]) == 1  # default count clipped by maxItems


def test_plain_text_and_malformed_json_fault(google_env: GoogleEnv) -> None:
    client = google_env.client()
    assert "hello there" in client.models.generate_content(model=TEXT_MODEL, contents="hello there").text

    google_env.emulator.configure(malformed_json_first_n=1)
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Storyboard)
    first = client.models.generate_content(model=TEXT_MODEL, contents="exactly 2 scenes", config=config)
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.text)
    assert first.parsed is None  # SDK swallows the parse error
    second = client.models.generate_content(model=TEXT_MODEL, contents="exactly 2 scenes", config=config)
    assert isinstance(second.parsed, Storyboard) and len(second.parsed.scenes) == 2


def test_streaming_and_async_clients(google_env: GoogleEnv) -> None:
    client = google_env.client()
    chunks = list(client.models.generate_content_stream(model=TEXT_MODEL, contents="stream this"))
    assert "stream this" in "".join(c.text or "" for c in chunks)

    async def run() -> types.GenerateVideosOperation:
        aio = client.aio
        text = await aio.models.generate_content(model=TEXT_MODEL, contents="async hi")
        assert "async hi" in text.text
        op = await aio.models.generate_videos(
            model=VIDEO_MODEL,
            source=types.GenerateVideosSource(prompt="async clip"),
            config=types.GenerateVideosConfig(duration_seconds=1),
        )
        while not op.done:
            await asyncio.sleep(0.05)
            op = await aio.operations.get(op)
        return op

    op = asyncio.run(run())
    assert op.response.generated_videos[0].video.video_bytes


# -- generateContent: images ---------------------------------------------------------------------


@pytest.mark.parametrize(("aspect", "ratio"), [("16:9", 16 / 9), ("9:16", 9 / 16), (None, 1.0), ("4:3", 4 / 3)])
def test_image_is_png_with_requested_aspect(google_env: GoogleEnv, aspect: str | None, ratio: float) -> None:
    data = _image(google_env.client(), "a red kite over hills", aspect)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    width, height = img.size
    assert height == 144 and width % 2 == 0
    assert abs(width / height - ratio) < 0.03


def test_images_are_deterministic_and_prompt_dependent(google_env: GoogleEnv) -> None:
    client = google_env.client()
    a1 = _image(client, "a red kite over hills")
    a2 = _image(client, "a red kite over hills")
    b = _image(client, "a submarine in deep water")
    assert a1 == a2
    assert np.abs(_rgb(a1) - _rgb(b)).mean() > 20


def test_reference_image_changes_output_and_is_logged(google_env: GoogleEnv) -> None:
    client = google_env.client()
    start = _image(client, "scene one: a cat on a mat")
    other = _image(client, "something else entirely")
    plain = _image(client, "scene one ends: the cat leaves")
    with_ref = _image(client, "scene one ends: the cat leaves", ref=start)
    with_other_ref = _image(client, "scene one ends: the cat leaves", ref=other)
    assert np.abs(_rgb(plain) - _rgb(with_ref)).mean() > 5
    assert np.abs(_rgb(with_ref) - _rgb(with_other_ref)).mean() > 5

    image_records = google_env.emulator.records("image")
    assert image_records[3].image_sha256 == [hashlib.sha256(start).hexdigest()]
    assert image_records[3].prompt == "scene one ends: the cat leaves"
    assert image_records[3].config["imageConfig"] == {"aspectRatio": "16:9"}
    assert image_records[2].image_sha256 == []


def test_empty_image_fault(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(empty_image_first_n=1)
    client = google_env.client()
    response = client.models.generate_content(
        model=IMAGE_MODEL, contents="a boat", config=types.GenerateContentConfig(response_modalities=["IMAGE"])
    )
    parts = response.candidates[0].content.parts
    assert all(p.inline_data is None for p in parts) and response.text
    assert Image.open(io.BytesIO(_image(client, "a boat"))).format == "PNG"


# -- Veo --------------------------------------------------------------------------------------------------


def test_video_morphs_between_frames_with_audio(google_env: GoogleEnv) -> None:
    client = google_env.client()
    first = _image(client, "dawn over a lake")
    last = _image(client, "night over a lake")
    op = _submit(client, "time-lapse from dawn to night", first, last, duration=2, audio=True)
    assert op.name.startswith("projects/") and "/operations/" in op.name and not op.done
    op = _wait(client, op)
    assert op.error is None and op.response is not None
    video = op.response.generated_videos[0].video
    assert video.mime_type == "video/mp4" and video.video_bytes

    container, frames = _decode(video.video_bytes)
    v_stream = container.streams.video[0]
    assert v_stream.codec_context.name == "h264" and v_stream.codec_context.pix_fmt == "yuv420p"
    assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    assert container.streams.audio[0].codec_context.channels == 2
    assert abs(container.duration / 1e6 - 2.0) <= 0.1
    assert len(frames) == 48 and frames[0].shape == (144, 256, 3)
    first_px, last_px = _rgb(first), _rgb(last)
    assert np.abs(frames[0] - first_px).mean() < 6
    assert np.abs(frames[-1] - last_px).mean() < 6
    assert np.abs(frames[0] - last_px).mean() > 20  # it really morphs

    submit = google_env.emulator.records("video_submit")[0]
    assert submit.image_sha256 == [hashlib.sha256(first).hexdigest(), hashlib.sha256(last).hexdigest()]
    assert submit.config["durationSeconds"] == 2 and submit.config["generateAudio"] is True


def test_video_without_audio_or_last_frame_is_static(google_env: GoogleEnv) -> None:
    client = google_env.client()
    first = _image(client, "a still harbour")
    op = _wait(client, _submit(client, "a still harbour", first, duration=1, audio=False))
    container, frames = _decode(op.result.generated_videos[0].video.video_bytes)
    assert len(container.streams.audio) == 0
    assert len(frames) == 24
    assert np.abs(frames[-1] - _rgb(first)).mean() < 6


def test_text_only_video_and_cache(google_env: GoogleEnv) -> None:
    client = google_env.client()
    ops = [_wait(client, _submit(client, "a paper plane", duration=1)) for _ in range(2)]
    blobs = [o.response.generated_videos[0].video.video_bytes for o in ops]
    assert blobs[0] == blobs[1]
    stats = google_env.emulator.stats()
    assert stats["video_encodes"] == 1
    assert stats["submissions_by_prompt"] == {"a paper plane": 2}


def test_identical_image_requests_render_once(google_env: GoogleEnv) -> None:
    client = google_env.client()
    first = _image(client, "a lighthouse")
    assert _image(client, "a lighthouse") == first  # the same bytes, from the cache
    assert google_env.emulator.stats()["image_renders"] == 1
    chained = _image(client, "a lighthouse", ref=first)
    assert chained != first and _image(client, "a lighthouse", ref=first) == chained
    assert _image(client, "a lighthouse", aspect="9:16") != first
    assert google_env.emulator.stats()["image_renders"] == 3


def test_a_video_request_with_an_image_that_does_not_decode_is_400(google_env: GoogleEnv) -> None:
    client = google_env.client()
    frame = _image(client, "a quiet pier")
    broken = frame[: len(frame) // 2]  # a PNG cut in half: its header is fine
    for first, last in ((broken, None), (frame, broken), (broken, broken)):
        with pytest.raises(errors.ClientError) as info:
            _submit(client, "a quiet pier", first, last, duration=1)
        assert info.value.code == 400
    assert _wait(client, _submit(client, "a quiet pier", frame, frame, duration=1)).response.generated_videos


def test_operation_can_be_polled_by_name_only(google_env: GoogleEnv) -> None:
    client = google_env.client()
    op = _submit(client, "a comet", duration=1)
    fresh = types.GenerateVideosOperation(name=op.name)
    assert _wait(client, fresh).response.generated_videos


def test_unknown_operation_is_404(google_env: GoogleEnv) -> None:
    bogus = types.GenerateVideosOperation(name="projects/p/locations/us-central1/publishers/google/models/veo/operations/nope")
    client = google_env.client()
    with pytest.raises(errors.ClientError) as info:
        client.operations.get(bogus)
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


def test_safety_filter(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(safety_word="forbidden")
    client = google_env.client()
    op = _wait(client, _submit(client, "a Forbidden dance", duration=1))
    assert op.error is None
    assert not op.response.generated_videos
    assert op.response.rai_media_filtered_count == 1
    assert "forbidden" in op.response.rai_media_filtered_reasons[0]


def test_error_operation_does_not_raise(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(error_word="explode")
    client = google_env.client()
    op = _wait(client, _submit(client, "things explode", duration=1))
    assert op.response is None
    assert op.error["code"] == 13 and "explode" in op.error["message"]


def test_never_finish_and_corrupt(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    emu.configure(never_finish_word="eternal", corrupt_word="glitch")
    client = google_env.client()
    stuck = _submit(client, "an eternal wait", duration=1)
    broken = _wait(client, _submit(client, "a glitch", duration=1))
    time.sleep(0.1)
    for _ in range(3):
        stuck = client.operations.get(stuck)
        assert not stuck.done
    assert emu.inflight == 1
    with pytest.raises(av.error.FFmpegError):
        _decode(broken.response.generated_videos[0].video.video_bytes)


def test_finish_operations_ends_the_latency_of_pending_operations_only(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    emu.configure(video_latency_s=600.0, never_finish_word="eternal")
    client = google_env.client()
    slow, stuck = _submit(client, "a slow sunrise", duration=1), _submit(client, "an eternal wait", duration=1)
    assert not client.operations.get(slow).done
    status, raw = _http(f"{google_env.base_url}/_emulator/finish", {})
    assert status == 200 and json.loads(raw) == {"finished": 1}  # `never` operations stay stuck
    assert _wait(client, slow, timeout=5).response.generated_videos
    assert not client.operations.get(stuck).done and emu.inflight == 1
    later = _submit(client, "a later sunset", duration=1)
    assert not client.operations.get(later).done  # submitted after the call: its own latency holds
    assert emu.finish_operations() == 1 and _wait(client, later, timeout=5).done


def test_corrupt_video_flag(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(corrupt_video=True)
    client = google_env.client()
    op = _wait(client, _submit(client, "anything", duration=1))
    with pytest.raises(av.error.FFmpegError):
        _decode(op.response.generated_videos[0].video.video_bytes)


def test_uri_delivery_and_authenticated_download(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    emu.configure(video_delivery="uri")
    client = google_env.client()
    op = _wait(client, _submit(client, "a kite", duration=1))
    video = op.response.generated_videos[0].video
    op_id = op.name.rsplit("/", 1)[-1]
    assert video.uri == f"gs://vidpipe-emulator/{op_id}.mp4" and video.video_bytes is None

    url = emu.gcs_http_url(video.uri)
    assert url == f"{emu.base_url}/storage/v1/b/vidpipe-emulator/o/{op_id}.mp4?alt=media"
    status, body = _http(url)
    assert status == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    status, body = _http(url, headers={"x-goog-api-key": google_env.api_key})
    assert status == 200
    container, frames = _decode(body)
    assert container.streams.video[0].codec_context.name == "h264" and len(frames) == 24
    assert _http(url, headers={"Authorization": "Bearer token"})[0] == 200
    status, _ = _http(
        f"{emu.base_url}/storage/v1/b/vidpipe-emulator/o/missing.mp4?alt=media", headers={"Authorization": "Bearer token"}
    )
    assert status == 404
    stats = emu.stats()
    assert stats["downloads"] == 2 and stats["requests"]["download"] == 4


# -- transport faults ----------------------------------------------------------------------------------------


def test_fail_first_429_raises_without_retry_and_succeeds_with_retry(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    emu.configure(fail_first={"video_submit": [429]})
    with pytest.raises(errors.ClientError) as info:
        _submit(google_env.client(), "a retry test", duration=1)
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert emu.submissions_by_prompt == {}

    emu.configure(fail_first={"video_submit": [429, 503]})
    client = _retrying_client(attempts=3)
    op = _wait(client, _submit(client, "a retry test", duration=1))
    assert op.response.generated_videos
    assert emu.request_count("video_submit") == 4
    assert emu.submissions_by_prompt == {"a retry test": 1}
    assert [r.status for r in emu.records("video_submit")] == [429, 429, 503, 200]


def test_503_surfaces_as_server_error(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(fail_first={"text": [503]})
    client = google_env.client()
    with pytest.raises(errors.ServerError) as info:
        client.models.generate_content(model=TEXT_MODEL, contents="hi")
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"


def test_random_rates_are_seeded(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    client = google_env.client()

    def run() -> list[int]:
        codes = []
        for _ in range(12):
            try:
                client.models.generate_content(model=TEXT_MODEL, contents="x")
                codes.append(200)
            except errors.APIError as exc:
                codes.append(exc.code)
        return codes

    emu.configure(rate_429=0.3, rate_503=0.3, seed=11)
    first = run()
    emu.reset()  # re-seeds; settings kept
    assert run() == first
    assert {200, 429, 503} <= set(first)


def test_drop_first_closes_connection(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    emu.configure(drop_first={"text": 1})
    client = _retrying_client()
    with pytest.raises(Exception) as info:  # the SDK does not retry dropped connections
        client.models.generate_content(model=TEXT_MODEL, contents="hi")
    assert not isinstance(info.value, errors.APIError)
    assert "disconnected" in str(info.value).lower()
    assert client.models.generate_content(model=TEXT_MODEL, contents="hi").text
    assert [r.status for r in emu.records("text")] == [None, 200]


def test_latency_fault(google_env: GoogleEnv) -> None:
    google_env.emulator.configure(latency={"text": 0.3})
    started = time.monotonic()
    client = google_env.client()
    client.models.generate_content(model=TEXT_MODEL, contents="slow")
    assert time.monotonic() - started >= 0.3


def test_auth_required(google_env: GoogleEnv) -> None:
    url = f"{google_env.base_url}/v1beta1/publishers/google/models/{TEXT_MODEL}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, raw = _http(url, body)
    assert status == 401
    assert json.loads(raw)["error"] == {"code": 401, "status": "UNAUTHENTICATED", "message": json.loads(raw)["error"]["message"]}
    assert _http(url, body, {"x-goog-api-key": "k"})[0] == 200
    google_env.emulator.configure(require_api_key=False)
    assert _http(url, body)[0] == 200


# -- counters, logs, control plane ------------------------------------------------------------------------------------


def test_peak_inflight_with_concurrent_submissions(google_env: GoogleEnv) -> None:
    emu = google_env.emulator
    client = google_env.client()
    prompts = ["alpha clip", "beta clip", "gamma clip"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        ops = list(pool.map(lambda p: _submit(client, p, duration=1), prompts))
        assert emu.inflight == 3
        done = list(pool.map(lambda o: _wait(client, o), ops))
    assert all(o.response.generated_videos for o in done)
    assert emu.peak_inflight == 3 and emu.inflight == 0
    assert emu.submissions_by_prompt == {p: 1 for p in prompts}


def test_api_key_never_recorded(google_env: GoogleEnv) -> None:
    client = google_env.client()
    client.models.generate_content(model=TEXT_MODEL, contents="hi")
    _wait(client, _submit(client, "secret-free", duration=1))
    emu = google_env.emulator
    dumped = json.dumps([r.to_dict() for r in emu.request_log]) + json.dumps(emu.stats())
    assert google_env.api_key not in dumped


def test_control_endpoints_over_http(google_env: GoogleEnv) -> None:
    base = google_env.base_url
    client = google_env.client()
    client.models.generate_content(model=TEXT_MODEL, contents="hi")
    status, raw = _http(f"{base}/_emulator/stats")
    assert status == 200 and json.loads(raw)["requests"]["text"] == 1

    status, raw = _http(f"{base}/_emulator/config", {"video_latency_s": 0.05, "fail_first": {"text": [500]}})
    assert status == 200 and json.loads(raw)["settings"]["video_latency_s"] == 0.05
    assert google_env.emulator.settings.video_latency_s == 0.05
    assert _http(f"{base}/_emulator/config", {"no_such_option": 1})[0] == 400

    status, raw = _http(f"{base}/_emulator/requests")
    assert status == 200 and json.loads(raw)[0]["prompt"] == "hi"

    status, raw = _http(f"{base}/_emulator/reset", {})
    assert status == 200 and json.loads(raw)["requests"]["text"] == 0
    assert google_env.emulator.settings.video_latency_s == 0.05  # kept
    assert json.loads(raw)["armed"]["fail_first"] == {"text": [500]}  # re-armed
    _http(f"{base}/_emulator/reset", {"settings": True})
    assert google_env.emulator.settings.video_latency_s == 0.3


def test_project_mode_and_api_version_paths(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.oauth2.credentials import Credentials

    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    client = genai.Client(
        vertexai=True,
        project="proj-1",
        location="europe-west4",
        credentials=Credentials(token="tok"),
        http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1"),
    )
    assert client.models.generate_content(model=TEXT_MODEL, contents="hi").text
    op = _submit(client, "project mode clip", duration=1)
    assert op.name.startswith("projects/proj-1/locations/europe-west4/publishers/google/models/")
    assert _wait(client, op).response.generated_videos
    paths = [r.path for r in emulator.request_log]
    assert paths[0] == f"/v1/projects/proj-1/locations/europe-west4/publishers/google/models/{TEXT_MODEL}:generateContent"
    assert paths[-1].endswith(f"/models/{VIDEO_MODEL}:fetchPredictOperation")


def test_python_api_construction_and_context_manager() -> None:
    with Emulator(faults=Faults(fail_first={"text": [429]}), image_height=64, require_api_key=False) as emu:
        assert emu.faults.fail_first == {"text": [429]} and emu.settings.image_height == 64
        url = f"{emu.base_url}/v1beta1/publishers/google/models/m:generateContent"
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        assert _http(url, body)[0] == 429
        assert _http(url, body)[0] == 200
    with pytest.raises(ValueError):
        Emulator(not_an_option=1)
    with pytest.raises(ValueError):
        Emulator(fail_first={"bogus_kind": [429]})


def test_subprocess_mode() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidpipe_emulator",
            "--port",
            "0",
            "--image-height",
            "64",
            "--video-height",
            "64",
            "--video-latency",
            "0.05",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=15)
        assert line and line[0].startswith("VIDPIPE_EMULATOR_URL=http://127.0.0.1:"), line
        base = line[0].strip().split("=", 1)[1]
        assert _http(f"{base}/_emulator/config", {"rate_429": 0.0})[0] == 200
        client = genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=base))
        data = _image(client, "subprocess image", "1:1")
        assert Image.open(io.BytesIO(data)).size == (64, 64)
        stats = json.loads(_http(f"{base}/_emulator/stats")[1])
        assert stats["requests"]["image"] == 1 and stats["settings"]["video_latency_s"] == 0.05
    finally:
        proc.terminate()
        proc.wait(timeout=10)
