"""One pricing rule: what the budget projects and what the ledger records agree for every kind of
call, with list prices and with custom prices set the way users set them (VIDPIPE_PRICES).

The google provider runs for real (google-genai SDK) against the wire emulator; expected amounts
are written out from the price tables below, never derived with the code under test.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import select

from vidpipe_core.config import DEFAULT_PRICES, Settings
from vidpipe_core.cost import (
    STORYBOARD_INPUT_TOKENS,
    STORYBOARD_OUTPUT_TOKENS_PER_SCENE,
    estimate,
    image_cost,
    priced,
    usage_cost,
    video_cost,
)
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.models import CharacterSheetRow, Keyframe, VideoClip
from vidpipe_core.projects import build_spec, create_project
from vidpipe_core.providers.base import (
    ClipOutcomeKind,
    ClipRequest,
    KeyframeRequest,
    Usage,
)
from vidpipe_core.providers.google import GoogleProvider, GoogleStoryboard
from vidpipe_core.request import ProjectRequest
from vidpipe_core.schemas import ProjectSpec, StageProviders, StyleGuide
from vidpipe_core.services import Services
from vidpipe_core.steps.characters import make_characters
from vidpipe_core.steps.clips import make_clips
from vidpipe_core.steps.keyframes import make_keyframes
from vidpipe_core.steps.state import resolve_state, stored_document
from vidpipe_core.steps.storyboard import make_storyboard, stage_models

TEXT, IMAGE, VEO = "gemini-2.5-flash", "gemini-2.5-flash-image", "veo-3.1-generate-001"
STYLE = StyleGuide(visual_style="watercolor", color_palette=["teal", "amber"], camera_style="slow dolly")


@dataclass(frozen=True)
class Case:
    """A price table as a user sets it, and the rates it must come to, written out by hand."""

    name: str
    table: dict[str, dict[str, float]] | None  # VIDPIPE_PRICES; None: list prices
    input_per_mtok: float
    output_per_mtok: float
    per_image: float
    per_second: float  # a clip with audio
    per_second_silent: float  # a clip without audio


CASES = [
    Case("list prices", None, 0.30, 2.50, 0.039, 0.40, 0.20),
    Case(
        "every rate custom",
        {
            TEXT: {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
            IMAGE: {"per_image": 0.5},
            VEO: {"per_second": 1.0, "per_second_no_audio": 0.25},
        },
        2.0,
        8.0,
        0.5,
        1.0,
        0.25,
    ),
    # Only per_second: a clip without audio costs per_second too, in the projection and in the ledger
    # (once projected at per_second but recorded at $0). Unnamed models keep their list prices.
    Case("only per_second", {VEO: {"per_second": 0.7}}, 0.30, 2.50, 0.039, 0.7, 0.7),
]


def _use_prices(monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    if case.table is not None:
        monkeypatch.setenv("VIDPIPE_PRICES", json.dumps(case.table))


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 144), color).save(out, format="PNG")
    return out.getvalue()


# --- the rule and the price table -----------------------------------------------------------------


def test_a_custom_table_replaces_the_entries_it_names_and_keeps_the_other_list_prices(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPIPE_PRICES", json.dumps({VEO: {"per_second": 0.7}, "my-veo": {"per_second": 0.1}}))
    s = Settings(data_dir=tmp_path)
    assert s.prices[VEO] == {"per_second": 0.7}  # whole entry: no list per_second_no_audio left
    assert s.prices["my-veo"] == {"per_second": 0.1}
    assert s.prices[TEXT] == DEFAULT_PRICES[TEXT] and s.prices["animatic"] == {}
    assert video_cost(s, VEO, 10, audio=False) == pytest.approx(7.0)
    assert video_cost(s, "my-veo", 10, audio=False) == pytest.approx(1.0)
    assert image_cost(s, IMAGE, 2) == pytest.approx(2 * 0.039)


def test_the_toml_file_sets_prices_the_same_way(monkeypatch, tmp_path):
    cfg = tmp_path / "vidpipe.toml"
    cfg.write_text(f'[prices."{VEO}"]\nper_second = 0.5\n')
    monkeypatch.setenv("VIDPIPE_CONFIG", str(cfg))
    s = Settings(data_dir=tmp_path)
    assert s.prices[VEO] == {"per_second": 0.5} and s.prices[IMAGE] == DEFAULT_PRICES[IMAGE]
    assert video_cost(s, VEO, 4, audio=False) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({VEO: {"per_secnd": 0.5}}, "unknown rate per_secnd"),
        ({VEO: {"per_second": -1}}, "per_second must be a finite number"),
        ({VEO: {"per_second": "nan"}}, "per_second must be a finite number"),
    ],
)
def test_a_price_table_with_a_typo_or_a_bad_amount_is_refused(monkeypatch, tmp_path, table, message):
    monkeypatch.setenv("VIDPIPE_PRICES", json.dumps(table))
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path)


def test_a_model_without_a_price_cannot_be_priced_but_nothing_consumed_is_free(tmp_path):
    s = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError) as info:
        video_cost(s, "veo-9-unlisted", 4, audio=True)
    assert "'veo-9-unlisted'" in str(info.value) and "VIDPIPE_PRICES" in str(info.value)
    with pytest.raises(ConfigurationError):
        usage_cost(s, "gemini-9-unlisted", Usage(input_tokens=10))
    assert video_cost(s, "veo-9-unlisted", 0, audio=True) == 0.0  # e.g. no clip left to pay for
    assert usage_cost(s, "gemini-9-unlisted", Usage()) == 0.0
    assert video_cost(s, "animatic", 8, audio=True) == 0.0  # an entry without rates is free


def test_the_cost_follows_from_what_was_consumed(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert usage_cost(s, IMAGE, Usage(images=1, cost_usd=99.0)) == pytest.approx(0.039)  # a reported figure is not taken
    assert priced(s, VEO, Usage(video_seconds=4.0), audio=True) == Usage(video_seconds=4.0, cost_usd=pytest.approx(1.6))
    with pytest.raises(ValueError, match="audio"):
        usage_cost(s, VEO, Usage(video_seconds=4.0))


# --- the real google provider: the ledger against the projection -------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_google_calls_are_recorded_at_the_projected_price(case: Case, google_env: Any, monkeypatch, tmp_path: Path):
    _use_prices(monkeypatch, case)
    settings = Settings(
        data_dir=tmp_path,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        poll_initial_s=0.05,
        poll_max_s=0.2,
        poll_timeout_s=10,
        gcs_base_url=google_env.base_url,
    )
    google = GoogleProvider(settings)
    spec = ProjectSpec(
        id="fox",
        prompt="a red fox crosses a frozen lake at dawn",
        style="watercolor",
        aspect_ratio="16:9",
        clip_duration=4,
        scenes=2,
        providers=StageProviders(storyboard="google", keyframes="google", clips="google"),
    )

    # Storyboard text: priced by the tokens it used, at the rates the projection uses for typical tokens.
    _, usage = google.storyboard.plan(spec)
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    spent = usage.input_tokens / 1e6 * case.input_per_mtok + usage.output_tokens / 1e6 * case.output_per_mtok
    assert usage.cost_usd == pytest.approx(spent)
    assert usage_cost(settings, TEXT, usage) == pytest.approx(spent)  # what the step records
    projected = estimate(settings, spec, {"storyboard": TEXT, "keyframes": IMAGE, "clips": VEO}).storyboard_usd
    assert projected == pytest.approx(
        STORYBOARD_INPUT_TOKENS / 1e6 * case.input_per_mtok + 2 * STORYBOARD_OUTPUT_TOKENS_PER_SCENE / 1e6 * case.output_per_mtok
    )
    at_recorded_tokens = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    assert usage_cost(settings, TEXT, at_recorded_tokens) == pytest.approx(spent)

    # Keyframe image.
    _, usage = google.keyframes.render(KeyframeRequest("fox", 0, "a fox at the lake shore", "scene 1", STYLE, "16:9", None))
    assert usage.images == 1
    assert usage.cost_usd == pytest.approx(case.per_image)
    assert usage_cost(settings, IMAGE, usage) == pytest.approx(case.per_image)
    assert image_cost(settings, IMAGE, 1) == pytest.approx(case.per_image)

    # Clips with and without audio.
    for audio, rate, duration in ((True, case.per_second, 4), (False, case.per_second_silent, 6)):
        request = ClipRequest(
            project_id="fox",
            scene_index=0,
            prompt=f"the fox walks (audio {audio})",
            start_png=_png((10, 20, 30)),
            end_png=_png((200, 210, 220)),
            duration_s=duration,
            aspect_ratio="16:9",
            generate_audio=audio,
        )
        outcome = google.clips.wait(google.clips.submit(request, VEO), request, VEO)
        assert outcome.kind is ClipOutcomeKind.DONE, outcome.error
        assert outcome.usage.video_seconds == duration
        assert outcome.usage.cost_usd == pytest.approx(duration * rate) and rate > 0
        assert usage_cost(settings, VEO, outcome.usage, audio=audio) == pytest.approx(duration * rate)
        assert video_cost(settings, VEO, duration, audio) == pytest.approx(duration * rate)


# --- the steps: the database ledger against the estimate made before spending ----------------------


@pytest.mark.parametrize("audio", [True, False], ids=["audio", "no audio"])
@pytest.mark.parametrize("case", CASES[1:], ids=lambda c: c.name)
def test_the_ledger_of_a_rendered_project_is_its_estimate(case: Case, audio: bool, gp: Any, monkeypatch):
    _use_prices(monkeypatch, case)
    plans: list[Usage] = []
    plan = GoogleStoryboard.plan

    def spy(self: GoogleStoryboard, spec: ProjectSpec) -> Any:
        board, usage = plan(self, spec)
        plans.append(usage)
        return board, usage

    monkeypatch.setattr(GoogleStoryboard, "plan", spy)
    services = Services.create()
    request = ProjectRequest(
        prompt="a paper boat drifts down a gutter", id="priced", scenes=2, clip_duration=4, generate_audio=audio
    )
    spec = create_project(services, build_spec(services.settings, request), "cli")
    projected = estimate(services.settings, spec, stage_models(services, spec))
    rate = case.per_second if audio else case.per_second_silent
    assert projected.keyframes_usd == pytest.approx(3 * case.per_image)
    assert projected.clips_usd == pytest.approx(2 * 4 * rate)

    make_storyboard(services, spec.id)
    make_characters(services, spec.id)
    make_keyframes(services, spec.id)
    make_clips(services, spec.id)

    (usage,) = plans
    assert stored_document(services, spec.id)["cost_usd"] == pytest.approx(
        usage.input_tokens / 1e6 * case.input_per_mtok + usage.output_tokens / 1e6 * case.output_per_mtok
    )
    with services.db.session() as s:
        frames = [r.cost_usd for r in s.scalars(select(Keyframe).where(Keyframe.project_id == spec.id))]
        clips = [r.cost_usd for r in s.scalars(select(VideoClip).where(VideoClip.project_id == spec.id))]
    assert len(frames) == 3 and len(clips) == 2
    assert sum(frames) == pytest.approx(projected.keyframes_usd)
    assert sum(clips) == pytest.approx(projected.clips_usd)
    # The character sheets: one image each, as the estimate prices them once the storyboard names them.
    with services.db.session() as s:
        sheets = [r.cost_usd for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == spec.id))]
    assert len(sheets) == len(resolve_state(services, spec.id).sheets) > 0
    planned = estimate(services.settings, spec, stage_models(services, spec), sheets=len(sheets))
    assert sum(sheets) == pytest.approx(planned.characters_usd) == pytest.approx(len(sheets) * case.per_image)
