"""Stitch step: join the current clips into final.mp4 (stream copy, or crossfade re-encode)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vidpipe_core import media
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.integrity import read_checked
from vidpipe_core.scenes import scene_label, scene_list, scene_number
from vidpipe_core.schemas import ScenePlan
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.services import Services
from vidpipe_core.spoken import SpokenLine
from vidpipe_core.steps import FINAL_VIDEO
from vidpipe_core.steps.final_mix import FinalMix, check_inputs, mix_final, wanted
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Progress, ProgressEvent, no_progress
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout, sha256_file

FADE_S = 0.5  # length of the fade from / to black, at most half a clip

# The storyboard asks for the fades in words, whoever wrote it (the animatic planner, an LLM, a person
# editing storyboard.json): the first scene's transition notes for a fade-in, the last scene's for a
# fade-out. "fade into the next shot" and "cross-fade" are neither.
_FADE_IN = re.compile(r"(?<![-\w])fade[sd]?[- ]?(?:in|up)\b|\bfrom black\b", re.I)
_FADE_OUT = re.compile(r"(?<![-\w])fade[sd]?[- ]?(?:out|down|to black)\b|\bto black\b", re.I)


def storyboard_fades(scenes: Sequence[ScenePlan]) -> tuple[bool, bool]:
    """(fade in, fade out) as the storyboard's transition notes ask: "fade in" / "from black" in the
    first scene's notes, "fade out" / "to black" in the last scene's."""
    if not scenes:
        return False, False
    return bool(_FADE_IN.search(scenes[0].transition_notes)), bool(_FADE_OUT.search(scenes[-1].transition_notes))


@dataclass
class FinalResult:
    path: str
    uri: str
    info: media.MediaInfo
    expected_duration_s: float
    crossfade: float
    scenes: list[int]
    skipped: dict[int, str] = field(default_factory=dict)  # scene -> safety reason
    audio_expected: bool = False
    sha256: str = ""
    durations: dict[int, float] = field(default_factory=dict)  # scene -> measured seconds of its clip
    fade_in_s: float = 0.0  # what the stitcher asked for (clamped to half the first clip)
    fade_out_s: float = 0.0
    mix: FinalMix | None = None  # the narration, music, loudness and subtitles, when mixed
    clip_sha256: tuple[str, ...] = ()  # the ledger's digest of each clip joined, in order


@dataclass(frozen=True)
class Picture:
    """What the final video shows, for its preview images: its length, how its clips were joined
    (the clips step's frame samples serve only when the picture is the clips' own: no crossfade,
    no burned subtitles), the fades at its ends."""

    duration_s: float
    crossfade: float
    burned: bool
    clip_sha256: tuple[str, ...]
    fade_in_s: float
    fade_out_s: float


def make_final(
    services: Services,
    project_id: str,
    *,
    crossfade: float | None = None,
    fade_in: bool | None = None,
    fade_out: bool | None = None,
    run_id: str | None = None,
    progress: Progress = no_progress,
    on_stitched: Callable[[Path, Picture], None] | None = None,
    lines: Sequence[SpokenLine] = (),
    music: Path | None = None,
    burn_subtitles: bool | None = None,
) -> FinalResult:
    """``lines`` (narration and dialogue, with their audio) and ``music`` (a local file) are mixed
    under the picture with subtitles (``final_mix``); without either the video is the stitch's,
    byte for byte. ``burn_subtitles``: None follows the spec. ``fade_in`` / ``fade_out``: None follows the storyboard's transition notes (`storyboard_fades`);
    True or False overrides them. ``on_stitched`` is called with a local file of the final picture
    and what it shows (the asset makes its preview images from them: no second copy from an
    object store): the stitched file, on a thread beside the mix, when the mix leaves the picture
    as it is; else the final file once it is stored. It has returned when this does."""
    check_inputs(lines, music)
    with step_lock(services, project_id, run_id):
        mixing = _Mixing(tuple(lines), music, burn_subtitles)
        return _make_final(services, project_id, crossfade, progress, fade_in, fade_out, on_stitched, mixing)


@dataclass(frozen=True)
class _Mixing:
    lines: tuple[SpokenLine, ...] = ()
    music: Path | None = None
    burn: bool | None = None


@dataclass(frozen=True)
class _Joined:
    """A done clip to join: its scene and the file the ledger recorded."""

    index: int
    path: str
    sha256: str | None


def _stage_checked_clips(services: Services, project_id: str, included: list[_Joined], folder: Path) -> list[Path]:
    """Every clip to join must be the file the ledger recorded. Each clip is read once, checked,
    and those very bytes are written to ``folder`` for ffmpeg: the video is made of what was
    checked, whatever happens to the store meanwhile, and one clip at a time is held in memory."""
    damaged = []
    staged = []
    for c in included:
        data, problem = read_checked(services.store, project_id, c.path, c.sha256)
        if problem is not None or data is None:
            damaged.append(f"the clip of {scene_label(c.index)}: {problem}")
            continue
        staged.append(folder / f"scene_{scene_number(c.index):03d}.mp4")
        staged[-1].write_bytes(data)
    if damaged:
        raise VidpipeError(
            f"cannot stitch: {'; '.join(damaged)}. Run `vidpipe resume {project_id}`: it fetches "
            "damaged clips again from their operations at no cost where the provider still holds them"
        )
    return staged


def _make_final(
    services: Services,
    project_id: str,
    crossfade: float | None,
    progress: Progress,
    fade_in: bool | None = None,
    fade_out: bool | None = None,
    on_stitched: Callable[[Path, Picture], None] | None = None,
    mixing: _Mixing = _Mixing(),
) -> FinalResult:
    state = resolve_state(services, project_id)
    asked_in, asked_out = storyboard_fades(state.scenes)
    fade_in_s = FADE_S if (asked_in if fade_in is None else fade_in) else 0.0
    fade_out_s = FADE_S if (asked_out if fade_out is None else fade_out) else 0.0
    spec = state.spec
    crossfade = spec.crossfade if crossfade is None else crossfade
    if not 0 <= crossfade < spec.clip_duration:  # run config reaches here unchecked; this also refuses nan
        raise InvalidInput(
            "crossfade", f"{crossfade} is out of range", f"0 <= crossfade < {spec.clip_duration} (the clip duration)"
        )
    included: list[_Joined] = []
    skipped: dict[int, str] = {}
    missing: list[int] = []
    for c in state.clips:
        if c.done and c.row is not None and c.row.path:  # done implies a row with a path; this narrows the types
            included.append(_Joined(c.index, c.row.path, c.row.sha256))
        elif c.skipped(spec.safety_policy) and c.row is not None:
            skipped[c.index] = "; ".join(c.row.safety_reasons or []) or "rejected by the safety filter"
        else:
            missing.append(c.index)
    refused = [i for i in missing if state.clips[i].refused(spec.safety_policy, services.settings.safety_retries)]
    if refused:  # `vidpipe render` would stop at the same refusal
        raise VidpipeError(
            f"project {project_id!r}: the safety filter refused {scene_list(refused)} (not submitted again under the "
            f'`{spec.safety_policy}` safety policy); change its prompt (`vidpipe edit {project_id} --scene {scene_number(refused[0])} --motion "..."`) '
            f"or leave it out of the video (`vidpipe edit {project_id} --safety-policy skip`), then `vidpipe resume {project_id}`"
        )
    if not state.clips or missing:
        which = scene_list(missing) if state.clips else "any scene"
        raise VidpipeError(f"project {project_id!r} has no finished clip for {which}; run `vidpipe render {project_id}`")
    if not included:
        raise VidpipeError(  # resuming alone would meet the same refusals
            f"project {project_id!r}: every scene was rejected by the safety filter; nothing to stitch. Change the "
            f'scenes\' prompts (`vidpipe edit {project_id} --scene 1 --motion "..."`, and so on), then `vidpipe resume {project_id}`'
        )

    # ffmpeg's inputs and its output live in this step's scratch folder, removed afterwards.
    with scratch_dir(services.settings.data_dir, "vidpipe-stitch") as tmp, ThreadPoolExecutor(max_workers=1) as beside:
        paths = _stage_checked_clips(services, project_id, included, Path(tmp))
        progress(ProgressEvent(FINAL_VIDEO, f"stitching {len(included)} clips", total=1))
        out = Path(tmp) / "final.mp4"
        info = media.stitch(paths, out, crossfade=crossfade, fade_in=fade_in_s, fade_out=fade_out_s)
        durations = [clip.duration_s for clip in info.clips]
        shas = tuple(c.sha256 or "" for c in included)

        def picture(duration_s: float, burned: bool) -> Picture:
            return Picture(duration_s, crossfade, burned, shas, fade_in_s, fade_out_s)

        images: Future[None] | None = None
        mixed: FinalMix | None = None
        if wanted(mixing.lines, mixing.music):  # the mix path: without words and music, the stitch as it is
            progress(ProgressEvent(FINAL_VIDEO, "mixing narration, music and subtitles", total=1))
            burn = spec.burn_subtitles if mixing.burn is None else mixing.burn
            if on_stitched is not None and not burn:  # the mix keeps the picture: its images are made meanwhile
                images = beside.submit(on_stitched, out, picture(info.duration_s, False))
            scenes = [c.index for c in included]
            info, mixed = mix_final(
                services, project_id, spec, info, scenes, out.with_name("mixed.mp4"),
                source=out, lines=mixing.lines, music=mixing.music, burn=burn,
            )  # fmt: skip
            out = out.with_name("mixed.mp4")
        sha = sha256_file(out)
        target = services.store.put_file(project_id, Layout.FINAL, out)
        progress(ProgressEvent(FINAL_VIDEO, "final video written", done=1, total=1))
        expected = sum(durations) - max(0, len(durations) - 1) * crossfade
        result = FinalResult(
            path=target,
            uri=services.store.uri(project_id, Layout.FINAL),
            info=info,
            expected_duration_s=expected,
            crossfade=crossfade,
            scenes=[c.index for c in included],
            skipped=skipped,
            audio_expected=spec.generate_audio or mixed is not None,  # the mix always has a track
            sha256=sha,
            durations={c.index: d for c, d in zip(included, durations, strict=True)},
            fade_in_s=fade_in_s,
            fade_out_s=fade_out_s,
            mix=mixed,
            clip_sha256=shas,
        )
        if images is not None:
            images.result()
        elif on_stitched is not None:
            on_stitched(out, picture(info.duration_s, mixed is not None and mixed.burned))
    return result
