"""The google provider against the wire emulator, through the real google-genai SDK.

Run: .venv/bin/python -m pytest tests/core/test_google_provider.py
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import httpx2
import pytest
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from tests.emulator_fixtures import emulator, google_env  # noqa: F401
from vidpipe_core.config import Settings
from vidpipe_core.cost import image_cost, usage_cost, video_cost
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProviderError
from vidpipe_core.providers.base import (
    ClipOutcomeKind,
    ClipProvider,
    ClipRequest,
    KeyframeProvider,
    KeyframeRequest,
    SheetRequest,
    StoryboardProvider,
    Usage,
)
from vidpipe_core.providers.google import (
    GoogleClips,
    GoogleKeyframes,
    GoogleProvider,
    aspect_ratio_error,
    google_credentials_status,
    operation_ref,
)
from vidpipe_core.providers.google.storyboard import _parse_storyboard
from vidpipe_core.retry import backoff_delay, is_transient_google, retry_call
from vidpipe_core.schemas import ProjectSpec, StageProviders, StyleGuide

VEO = "veo-3.1-generate-001"
STYLE = StyleGuide(visual_style="watercolor", color_palette=["teal", "amber", "ivory"], camera_style="slow dolly")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def genv(google_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    # Prove the provider reaches the emulator through GOOGLE_VERTEX_BASE_URL alone.
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    return google_env


@pytest.fixture
def settings(tmp_path: Path, genv: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        poll_initial_s=0.05,
        poll_max_s=0.2,
        poll_timeout_s=5,
        gcs_base_url=genv.base_url,
    )


@pytest.fixture
def provider(settings: Settings) -> GoogleProvider:
    return GoogleProvider(settings)


def spec(scenes: int = 3, duration: int = 4, aspect: str = "16:9", **kw: Any) -> ProjectSpec:
    return ProjectSpec(
        id="fox",
        prompt="a red fox crosses a frozen lake at dawn",
        style="watercolor",
        aspect_ratio=aspect,
        clip_duration=duration,
        scenes=scenes,
        providers=StageProviders(storyboard="google", keyframes="google", clips="google"),
        **kw,
    )


def png(size: tuple[int, int] = (256, 144), color: tuple[int, int, int] = (200, 80, 40), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


def clip_request(prompt: str = "the fox walks left to right", scene: int = 1, **kw: Any) -> ClipRequest:
    values: dict[str, Any] = dict(
        project_id="fox",
        scene_index=scene,
        prompt=prompt,
        start_png=png(color=(10, 20, 30)),
        end_png=png(color=(200, 210, 220)),
        duration_s=4,
        aspect_ratio="16:9",
        generate_audio=True,
    )
    values.update(kw)
    return ClipRequest(**values)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first_frame_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


# --- protocols / wiring -----------------------------------------------------------------------


def test_stage_classes_satisfy_the_protocols_and_share_one_client(provider: GoogleProvider) -> None:
    assert isinstance(provider.storyboard, StoryboardProvider)
    assert isinstance(provider.keyframes, KeyframeProvider)
    assert isinstance(provider.clips, ClipProvider)
    assert {p.name for p in (provider.storyboard, provider.keyframes, provider.clips)} == {"google"}
    assert provider.storyboard.client is provider.keyframes.client is provider.clips.client
    assert provider.for_stage("clips") is provider.clips
    s = spec()
    assert provider.storyboard.model_for(s) == "gemini-2.5-flash"
    assert provider.keyframes.model_for(s) == "gemini-2.5-flash-image"
    assert provider.clips.model_for(s) == VEO
    assert provider.clips.model_for(spec(fast=True)) == "veo-3.1-fast-generate-001"
    assert provider.clips.allowed_durations(s) == (4, 6, 8)
    assert provider.keyframes.expected_size("16:9") is None


def test_client_is_vertex_without_sdk_retries(provider: GoogleProvider) -> None:
    client = provider.clips.client.get()
    assert client.vertexai
    assert client._api_client._http_options.retry_options is None  # our retry_call is the only one


# --- storyboard -------------------------------------------------------------------------------


def test_storyboard_has_exactly_n_scenes_and_costs_tokens(provider: GoogleProvider, genv: Any, settings: Settings) -> None:
    board, usage = provider.storyboard.plan(spec(scenes=4))
    assert len(board.scenes) == 4
    assert all(s.start_frame_prompt and s.end_frame_prompt and s.motion_prompt for s in board.scenes)
    (record,) = genv.emulator.records("text")
    assert "exactly 4 scenes" in record.prompt and "a red fox crosses a frozen lake" in record.prompt
    assert record.config["responseMimeType"] == "application/json"
    assert record.config["responseJsonSchema"]["properties"].keys() >= {"title", "style_guide", "scenes"}
    assert record.model == "gemini-2.5-flash"
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    # Priced like the projection prices the same tokens (the storyboard projection is this rule at typical sizes).
    tokens = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    assert usage.cost_usd == pytest.approx(usage_cost(settings, "gemini-2.5-flash", tokens))
    assert usage.cost_usd > 0


def test_storyboard_retries_invalid_json_with_lower_temperature(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(malformed_json_first_n=2)
    board, usage = provider.storyboard.plan(spec(scenes=2))
    assert len(board.scenes) == 2
    temperatures = [r.config["temperature"] for r in genv.emulator.records("text")]
    assert temperatures == pytest.approx([0.9, 0.6, 0.3])
    assert usage.input_tokens > 0  # the failed attempts are counted too


def test_storyboard_gives_up_after_three_invalid_answers(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(malformed_json_first_n=3)
    with pytest.raises(ProviderError) as info:
        provider.storyboard.plan(spec())
    assert info.value.stage == "storyboard"
    assert "not valid JSON" in str(info.value) and "3 attempts" in str(info.value)
    assert genv.emulator.request_count("text") == 3


def test_storyboard_scene_count_is_enforced() -> None:
    scene = {"description": "d", "start_frame_prompt": "s", "end_frame_prompt": "e", "motion_prompt": "m"}
    doc = {"title": "t", "style_guide": STYLE.model_dump(), "scenes": [dict(scene, description=f"d{i}") for i in range(5)]}
    board, problem = _parse_storyboard(json.dumps(doc), 3)
    assert board is not None and [s.description for s in board.scenes] == ["d0", "d1", "d2"]
    board, problem = _parse_storyboard(json.dumps(doc), 6)
    assert board is None and "5 scenes instead of 6" in problem
    board, problem = _parse_storyboard(json.dumps({"title": "t", "scenes": []}), 1)
    assert board is None and "style_guide" in problem


def test_storyboard_text_that_hides_or_reorders_itself_is_invalid_output() -> None:
    """A character's name with U+202E would reach every later prompt and caption: the answer is
    refused like one that misses the schema (so it is asked again, at a lower temperature)."""
    scene = {"description": "d", "start_frame_prompt": "s", "end_frame_prompt": "e", "motion_prompt": "m"}
    guide = {**STYLE.model_dump(), "characters": [{"name": "Ann\u202enna", "appearance": "tall"}]}
    board, problem = _parse_storyboard(json.dumps({"title": "t", "style_guide": guide, "scenes": [scene]}), 1)
    assert board is None
    assert problem.startswith("style_guide.characters.0.name: contains an invisible format character (U+202E")
    guide["characters"] = [{"name": "Ann", "appearance": "a family \U0001f469\u200d\U0001f467 of two"}]
    board, problem = _parse_storyboard(json.dumps({"title": "t", "style_guide": guide, "scenes": [scene]}), 1)
    assert board is not None and problem == ""


# --- keyframes --------------------------------------------------------------------------------


def test_keyframe_from_text_only(provider: GoogleProvider, genv: Any, settings: Settings) -> None:
    req = KeyframeRequest("fox", 0, "a fox at the lake shore", "scene 1", STYLE, "16:9", None)
    made, usage = provider.keyframes.render(req)
    with Image.open(io.BytesIO(made.data)) as img:
        assert img.format == "PNG" and img.size == made.size
        assert aspect_ratio_error(*img.size, "16:9") is None
    (record,) = genv.emulator.records("image")
    assert record.image_sha256 == []
    assert record.config["responseModalities"] == ["IMAGE"]
    assert record.config["imageConfig"]["aspectRatio"] == "16:9"
    assert usage.images == 1 and usage.cost_usd == pytest.approx(image_cost(settings, "gemini-2.5-flash-image", 1))


def test_keyframe_sends_the_reference_image(provider: GoogleProvider, genv: Any) -> None:
    reference = png((144, 256), (30, 90, 160))
    req = KeyframeRequest("fox", 2, "the fox looks back", "scene 2", STYLE, "9:16", reference)
    made, _ = provider.keyframes.render(req)
    with Image.open(io.BytesIO(made.data)) as img:
        assert aspect_ratio_error(*img.size, "9:16") is None
    (record,) = genv.emulator.records("image")
    assert record.image_sha256 == [sha(reference)]
    assert "previous keyframe" in record.prompt


def test_keyframe_retries_responses_without_an_image(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(empty_image_first_n=2)
    made, _ = provider.keyframes.render(KeyframeRequest("fox", 0, "a fox", "c", STYLE, "16:9", None))
    assert made.data.startswith(b"\x89PNG")
    assert genv.emulator.request_count("image") == 3


def test_keyframe_fails_clearly_when_no_image_ever_comes(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(empty_image_first_n=5)
    with pytest.raises(ProviderError) as info:
        provider.keyframes.render(KeyframeRequest("fox", 3, "a fox", "c", STYLE, "16:9", None))
    assert info.value.stage == "keyframes" and info.value.scene == 3
    assert "no image returned" in str(info.value)
    assert genv.emulator.request_count("image") == 3


class _FakeModels:
    def __init__(self, image: bytes, mime: str) -> None:
        self.image, self.mime, self.calls = image, mime, 0

    def generate_content(self, **_: Any) -> types.GenerateContentResponse:
        self.calls += 1
        part = types.Part.from_bytes(data=self.image, mime_type=self.mime)
        return types.GenerateContentResponse(candidates=[types.Candidate(content=types.Content(role="model", parts=[part]))])


def test_keyframe_aspect_ratio_is_checked_and_jpeg_converted(tmp_path: Path) -> None:
    quick = Settings(data_dir=tmp_path, retry_initial_s=0.0, retry_max_s=0.0)
    models = _FakeModels(png((300, 300), fmt="JPEG"), "image/jpeg")
    keyframes = GoogleKeyframes(quick, SimpleNamespace(models=models))
    with pytest.raises(ProviderError) as info:
        keyframes.render(KeyframeRequest("fox", 1, "a fox", "c", STYLE, "16:9", None))
    assert "300x300" in str(info.value) and "16:9" in str(info.value) and models.calls == 3

    models.image = png((1280, 720), fmt="JPEG")
    made, _ = keyframes.render(KeyframeRequest("fox", 1, "a fox", "c", STYLE, "16:9", None))
    with Image.open(io.BytesIO(made.data)) as img:
        assert img.format == "PNG" and img.size == made.size == (1280, 720)
    assert aspect_ratio_error(1290, 720, "16:9") is None  # 0.8 % off
    assert aspect_ratio_error(1320, 720, "16:9") is not None  # 3.1 % off


def _truncated_png(size: tuple[int, int]) -> bytes:
    """A PNG whose header reads (size and all) but whose pixels do not decode."""
    noise = Image.frombytes("RGB", size, bytes(range(256)) * (size[0] * size[1] * 3 // 256 + 1))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    data = out.getvalue()[: len(out.getvalue()) // 2]
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == size  # the header alone would pass
    return data


def test_a_keyframe_or_sheet_that_does_not_decode_is_never_returned(tmp_path: Path) -> None:
    """The provider decodes every pixel of the image it returns, once: the steps record the size
    that decode found and decode nothing again, so an image whose header reads but whose pixels
    do not is an unusable answer (asked again), never a frame."""
    quick = Settings(data_dir=tmp_path, retry_initial_s=0.0, retry_max_s=0.0)
    models = _FakeModels(_truncated_png((320, 180)), "image/png")
    keyframes = GoogleKeyframes(quick, SimpleNamespace(models=models))
    with pytest.raises(ProviderError) as info:
        keyframes.render(KeyframeRequest("fox", 1, "a fox", "c", STYLE, "16:9", None))
    assert "image/png image does not decode" in str(info.value) and models.calls == 3
    with pytest.raises(ProviderError, match="does not decode"):
        keyframes.render_sheet(SheetRequest("fox", "Ann", "a red coat", "Ann", STYLE, "16:9"))
    assert models.calls == 6

    models.image = png((320, 180))
    made, _ = keyframes.render_sheet(SheetRequest("fox", "Ann", "a red coat", "Ann", STYLE, "16:9"))
    assert made.data == models.image and made.size == (320, 180)


# --- clips ------------------------------------------------------------------------------------


def test_clip_happy_path(provider: GoogleProvider, genv: Any, settings: Settings) -> None:
    req = clip_request(negative_prompt="text overlays", seed=7)
    polls: list[str] = []
    name = provider.clips.submit(req, VEO)
    assert "/operations/" in name
    outcome = provider.clips.wait(name, req, VEO, on_poll=polls.append)
    assert outcome.kind is ClipOutcomeKind.DONE, outcome.error
    assert outcome.video is not None and first_frame_size(outcome.video)[0] > 0
    assert outcome.usage.video_seconds == 4
    assert outcome.usage.cost_usd == pytest.approx(video_cost(settings, VEO, 4, audio=True))
    assert polls and all(p.startswith("video operation running") for p in polls)
    (submit,) = genv.emulator.records("video_submit")
    assert submit.image_sha256 == [sha(req.start_png), sha(req.end_png)]
    params = submit.config
    assert params["durationSeconds"] == 4 and params["aspectRatio"] == "16:9"
    assert params["generateAudio"] is True and params["negativePrompt"] == "text overlays"
    assert params["seed"] == 7 and params["sampleCount"] == 1


def test_clip_without_audio_uses_the_cheaper_price(provider: GoogleProvider, settings: Settings) -> None:
    req = clip_request(generate_audio=False, duration_s=6)
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.usage.video_seconds == 6
    assert outcome.usage.cost_usd == pytest.approx(video_cost(settings, VEO, 6, audio=False))
    assert outcome.usage.cost_usd < video_cost(settings, VEO, 6, audio=True)


def test_reattach_by_name_after_a_crash(settings: Settings, genv: Any) -> None:
    req = clip_request(prompt="reattach: the fox sleeps")
    name = GoogleProvider(settings).clips.submit(req, VEO)
    # The process dies; a new one only has the name from the database.
    fresh = GoogleProvider(settings)
    outcome = fresh.clips.wait(name, req, VEO)
    assert outcome.kind is ClipOutcomeKind.DONE
    assert genv.emulator.submissions_by_prompt == {req.prompt: 1}


def test_operation_ref_completes_short_names() -> None:
    full = f"projects/p/locations/us-central1/publishers/google/models/{VEO}/operations/abc"
    assert operation_ref(full, VEO) == full
    assert operation_ref("abc", VEO) == f"publishers/google/models/{VEO}/operations/abc"
    assert operation_ref("operations/abc", VEO) == f"publishers/google/models/{VEO}/operations/abc"


def test_transient_errors_on_submit_and_poll_are_retried(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(fail_first={"video_submit": [429, 503], "video_poll": [503, 429]})
    req = clip_request()
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.DONE
    assert genv.emulator.submissions_by_prompt == {req.prompt: 1}
    injected = genv.emulator.stats()["faults_injected"]
    assert injected["429:video_submit"] == injected["503:video_submit"] == 1
    assert injected["503:video_poll"] == injected["429:video_poll"] == 1


def test_persistent_503_names_stage_scene_and_status(provider: GoogleProvider, genv: Any, settings: Settings) -> None:
    genv.emulator.configure(rate_503=1.0)
    with pytest.raises(ProviderError) as info:
        provider.clips.submit(clip_request(scene=2), VEO)
    err = info.value
    assert (err.stage, err.scene, err.status) == ("clips", 2, 503)
    assert "clips, scene 3" in str(err) and "503" in str(err) and f"{settings.retry_attempts} attempts" in str(err)
    # Exactly our attempts: the SDK does not retry underneath.
    assert genv.emulator.request_count("video_submit") == settings.retry_attempts


def test_dropped_connections_are_retried(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(drop_first={"video_submit": 1, "video_poll": 1, "text": 1})
    req = clip_request()
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.DONE
    board, _ = provider.storyboard.plan(spec(scenes=1))
    assert len(board.scenes) == 1


def test_safety_filter_is_a_rejection_with_the_reason(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(safety_word="forbidden")
    req = clip_request(prompt="a forbidden ritual")
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.REJECTED
    assert outcome.video is None and any("forbidden" in r for r in outcome.reasons)
    assert outcome.usage.cost_usd == 0


def test_operation_error_is_a_failure_with_the_message(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(error_word="explode")
    req = clip_request(prompt="the lake explodes")
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.FAILED
    assert outcome.error and "Video generation failed" in outcome.error


def test_operation_that_never_finishes_times_out_naming_the_scene(tmp_path: Path, genv: Any) -> None:
    quick = Settings(
        data_dir=tmp_path, retry_initial_s=0.01, retry_max_s=0.05, poll_initial_s=0.05, poll_max_s=0.1, poll_timeout_s=0.6
    )
    genv.emulator.configure(never_finish_word="eternal")
    clips = GoogleClips(quick)
    req = clip_request(prompt="an eternal winter", scene=4)
    name = clips.submit(req, VEO)
    with pytest.raises(ProviderError) as info:
        clips.wait(name, req, VEO)
    assert info.value.stage == "clips" and info.value.scene == 4
    assert "did not finish within 0.6 s" in str(info.value) and name in str(info.value)


def test_corrupt_video_is_a_failure(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(corrupt_word="garbled")
    req = clip_request(prompt="a garbled transmission")
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.FAILED
    assert outcome.error and "not a decodable video" in outcome.error


def test_uri_delivery_is_downloaded_with_auth(provider: GoogleProvider, genv: Any) -> None:
    genv.emulator.configure(video_delivery="uri", fail_first={"download": [503]})
    req = clip_request()
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    assert outcome.kind is ClipOutcomeKind.DONE, outcome.error
    assert first_frame_size(outcome.video or b"")[0] > 0
    assert genv.emulator.downloads == 1
    statuses = [r.status for r in genv.emulator.records("download")]
    assert statuses == [503, 200]  # retried; 200 proves the key header (401 otherwise)


def test_uri_download_failure_names_the_scene(provider: GoogleProvider, genv: Any, settings: Settings) -> None:
    genv.emulator.configure(video_delivery="uri", fail_first={"download": [404]})
    req = clip_request(scene=5)
    name = provider.clips.submit(req, VEO)
    with pytest.raises(ProviderError) as info:
        provider.clips.wait(name, req, VEO)
    assert (info.value.stage, info.value.scene, info.value.status) == ("clips", 5, 404)
    assert "gs://vidpipe-emulator/" in str(info.value)
    assert genv.emulator.request_count("download") == 1  # 404 is not retried


# --- input validation and credentials ---------------------------------------------------------


def test_invalid_duration_is_refused_before_any_request(provider: GoogleProvider, genv: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        provider.clips.validate_clip_spec(spec(duration=5))
    assert info.value.field == "clip_duration" and info.value.allowed == "4, 6, 8"
    with pytest.raises(InvalidInput):
        provider.clips.submit(clip_request(duration_s=10), VEO)
    provider.clips.validate_clip_spec(spec(duration=8))
    assert genv.emulator.stats()["requests_total"] == 0


def test_credentials_status_messages(tmp_path: Path) -> None:
    secret = "AIza-super-secret-value"
    ok, message = google_credentials_status({})
    assert not ok and "GOOGLE_GENAI_USE_VERTEXAI=true" in message and "GOOGLE_API_KEY" in message

    ok, message = google_credentials_status({"GOOGLE_API_KEY": secret})
    assert not ok and "Vertex AI mode" in message and "GOOGLE_GENAI_USE_VERTEXAI=true" in message
    assert secret not in message

    ok, message = google_credentials_status({"GOOGLE_GENAI_USE_VERTEXAI": "true", "GOOGLE_API_KEY": secret})
    assert ok and "express" in message and secret not in message

    ok, message = google_credentials_status({"GOOGLE_GENAI_USE_VERTEXAI": "1"})
    assert not ok and "GOOGLE_CLOUD_PROJECT" in message

    no_adc = {
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_CLOUD_PROJECT": "p",
        "GOOGLE_CLOUD_LOCATION": "us-central1",
        "HOME": str(tmp_path),
    }
    ok, message = google_credentials_status(no_adc)
    assert not ok and "Application Default Credentials" in message

    key_file = tmp_path / "sa.json"
    key_file.write_text("{}")
    ok, message = google_credentials_status(dict(no_adc, GOOGLE_APPLICATION_CREDENTIALS=str(key_file)))
    assert ok and "us-central1" in message


def test_missing_credentials_fail_before_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="GOOGLE_GENAI_USE_VERTEXAI"):
        GoogleProvider(settings).storyboard.plan(spec())
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-plain-gemini-key")
    with pytest.raises(ConfigurationError) as info:
        GoogleProvider(settings).clips.submit(clip_request(), VEO)
    assert "Vertex AI mode" in str(info.value) and "AIza-plain-gemini-key" not in str(info.value)


def test_api_key_never_appears_in_errors_or_logs(
    provider: GoogleProvider, genv: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    emu = genv.emulator

    emu.configure(rate_503=1.0)
    with pytest.raises(ProviderError) as info:
        provider.storyboard.plan(spec())
    messages += [str(info.value), repr(info.value), str(info.value.__cause__)]

    emu.configure(rate_503=0.0, fail_first={"video_poll": [429]}, error_word="explode", video_delivery="uri")
    req = clip_request(prompt="it will explode")
    outcome = provider.clips.wait(provider.clips.submit(req, VEO), req, VEO)
    messages.append(outcome.error or "")

    emu.configure(fail_first={"download": [403]})
    ok_req = clip_request(prompt="a calm lake")
    with pytest.raises(ProviderError) as info:
        provider.clips.wait(provider.clips.submit(ok_req, VEO), ok_req, VEO)
    messages += [str(info.value), str(info.value.__cause__)]

    assert caplog.records, "expected retry logs"
    assert genv.api_key not in caplog.text
    assert all(genv.api_key not in m for m in messages)


# --- retry helper -----------------------------------------------------------------------------


def _api_error(code: int) -> genai_errors.APIError:
    return genai_errors.APIError(code, {"error": {"code": code, "message": "boom", "status": "X"}})


def test_retry_call_backs_off_with_bounded_full_jitter() -> None:
    delays: list[float] = []
    calls = iter([_api_error(429), httpx2.RemoteProtocolError("dropped"), ConnectionError("reset"), "ok"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item
        return item

    result = retry_call(
        fn, stage="clips", scene=1, attempts=5, initial_s=0.1, max_s=0.25, is_transient=is_transient_google, sleep=delays.append
    )
    assert result == "ok" and len(delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(delays, (0.1, 0.2, 0.25), strict=True))
    assert all(0 <= backoff_delay(n, 1.0, 30.0) <= min(30.0, 2 ** (n - 1)) for n in range(1, 10))


def test_retry_call_stops_at_once_for_permanent_errors_and_after_the_last_attempt() -> None:
    slept: list[float] = []

    def bad_request() -> None:
        raise _api_error(400)

    with pytest.raises(ProviderError) as info:
        retry_call(
            bad_request,
            stage="keyframes",
            scene=2,
            attempts=5,
            initial_s=0,
            max_s=0,
            is_transient=is_transient_google,
            sleep=slept.append,
        )
    assert slept == [] and info.value.status == 400 and "keyframes, frame 3" in str(info.value)

    def always_busy() -> None:
        raise _api_error(503)

    retried: list[int] = []
    with pytest.raises(ProviderError) as info:
        retry_call(
            always_busy,
            stage="clips",
            scene=0,
            attempts=3,
            initial_s=0,
            max_s=0,
            is_transient=is_transient_google,
            sleep=slept.append,
            on_retry=lambda n, e, d: retried.append(n),
        )
    assert retried == [1, 2] and info.value.status == 503 and "gave up after 3 attempts" in str(info.value)
    assert isinstance(info.value.__cause__, genai_errors.APIError)


def test_transient_classifier() -> None:
    for code in (408, 429, 500, 502, 503, 504):
        assert is_transient_google(_api_error(code))
    for code in (400, 401, 403, 404):
        assert not is_transient_google(_api_error(code))
    assert is_transient_google(httpx2.ConnectError("refused"))
    assert is_transient_google(httpx2.ReadTimeout("slow"))
    assert is_transient_google(httpx2.RemoteProtocolError("Server disconnected without sending a response."))
    assert is_transient_google(TimeoutError()) and is_transient_google(ConnectionResetError())
    assert not is_transient_google(ValueError("bad"))
    assert not is_transient_google(InvalidInput("x", "y"))
