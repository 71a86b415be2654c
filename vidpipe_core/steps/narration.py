"""Narration step: one narrator's voice over the scenes. Each narrated scene's line (the
storyboard's ``narration``) is said once by the narrator of the project's clips provider
(`providers.narration_provider`) and recorded in the ledger (`NarrationLine`: fingerprint of text,
voice, model and language; the WAV's path and sha256; its measured length; the cost).

A line is reused while its fingerprint holds and its bytes match the ledger. Lines are checked
before anything is paid: a line whose estimated length does not fit its scene, even sped up by
`speech.MAX_TEMPO`, refuses the step before the first request. A line said longer than its scene
is sped up (ffmpeg's atempo, through `media.run_ffmpeg`) by at most that much; a longer one is
refused naming the scene and both lengths. Nothing cuts a line.

The lines are said side by side, at most ``narration_concurrency`` at once (each a TTS request or an
espeak-ng process, its file and its ledger row written by its own thread); a line that fails does
not stop the others, and the first failure in scene order is raised once they are done.

A damaged WAV is said again for free where the narrator gives the same bytes (the animatic);
otherwise only with ``repair`` (the project's policy for every paid artifact: `vidpipe resume
--repair`), and the new line's cost adds to its row. ``spoken_lines`` is what the final mix is
given (`spoken.SpokenLine`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from vidpipe_core import media
from vidpipe_core.cancel import CancelToken
from vidpipe_core.cost import guard_budget, narration_cost, usage_cost
from vidpipe_core.errors import VidpipeError
from vidpipe_core.fingerprint import narration_fingerprint
from vidpipe_core.integrity import Damage, DamagedArtifacts, read_checked
from vidpipe_core.models import KeyframeStatus, NarrationLine
from vidpipe_core.projects import load_spec
from vidpipe_core.providers import narration_provider
from vidpipe_core.providers.base import NarrationProvider, SpeechRequest
from vidpipe_core.scenes import scene_label
from vidpipe_core.schemas import ProjectSpec, ScenePlan
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.services import Services
from vidpipe_core.speech import check_line, estimated_seconds, tempo_for, wav_seconds
from vidpipe_core.spoken import SpokenLine
from vidpipe_core.steps import NARRATION
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import load_storyboard_rows, spent_usd
from vidpipe_core.storage import Layout, sha256_bytes

# Where a dialogue line's subtitle sits inside its scene (Veo places the speech itself, so the cue
# is an approximation): from a quarter second in, as long as the words take at the storyboard's
# pace, never past the scene's end.
DIALOGUE_OFFSET_S = 0.25


@dataclass
class LineState:
    """One narrated scene's line: what it should be (fingerprint) and its ledger row, if made."""

    index: int
    text: str
    fingerprint: str
    row: NarrationLine | None = None

    @property
    def done(self) -> bool:
        return self.row is not None and self.row.made


@dataclass
class NarrationReport(StepReport):
    lines: list[LineState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each: e.g. silence without a speech engine
    enabled: bool = True


def voice_of(spec: ProjectSpec, services: Services) -> tuple[str, str]:
    """The project's voice and language (a spec that names none: the settings')."""
    return spec.voice or services.settings.tts_voice, spec.language or services.settings.tts_language


def resolve_lines(services: Services, spec: ProjectSpec, scenes: list[ScenePlan]) -> list[LineState]:
    """The narrated scenes' lines as they should be and the rows that match (none without narration)."""
    if not spec.narration:
        return []
    provider = narration_provider(spec.providers.clips, services.settings)
    model = provider.model_for(spec)
    voice, language = voice_of(spec, services)
    with services.db.session() as s:
        rows = {
            (r.scene_index, r.fingerprint): r for r in s.scalars(select(NarrationLine).where(NarrationLine.project_id == spec.id))
        }
    lines = []
    for index, scene in enumerate(scenes):
        text = scene.narration.strip()
        if not text:
            continue
        fp = narration_fingerprint(provider=provider.name, model=model, text=text, voice=voice, language=language)
        lines.append(LineState(index, text, fp, rows.get((index, fp))))
    return lines


def lines_to_say(services: Services, project_id: str) -> list[str] | None:
    """The texts of the lines still to say (None before there is a storyboard: not known yet)."""
    spec = load_spec(services, project_id)
    scenes = load_storyboard_rows(services, project_id)
    if not scenes:
        return None
    return [line.text for line in resolve_lines(services, spec, scenes) if not line.done]


def pending_line(services: Services, spec: ProjectSpec, scenes: list[ScenePlan]) -> str | None:
    """The first narration line still to say, or whose file no longer matches the ledger, in words
    (None when every line is made and whole, or the project has no narration)."""
    for line in resolve_lines(services, spec, scenes):
        if not line.done or line.row is None or not line.row.path:
            return f"the narration of {scene_label(line.index)} missing"
        problem = read_checked(services.store, spec.id, line.row.path, line.row.sha256)[1]
        if problem is not None:
            return f"the narration of {scene_label(line.index)} is damaged: {problem}"
    return None


def check_lines(spec: ProjectSpec, scenes: list[ScenePlan]) -> None:
    """Refuse (InvalidInput naming the scene and both lengths) a line that cannot fit its scene."""
    for index, scene in enumerate(scenes):
        check_line(index, scene.narration, spec.clip_duration)


def make_narration(
    services: Services, project_id: str, *, run_id: str | None = None, repair: bool = False, progress: Progress = no_progress
) -> NarrationReport:
    with step_lock(services, project_id, run_id):
        return _make_narration(services, project_id, repair, progress)


def _make_narration(services: Services, project_id: str, repair: bool, progress: Progress) -> NarrationReport:
    spec = load_spec(services, project_id)
    scenes = load_storyboard_rows(services, project_id)
    if not scenes:
        raise VidpipeError(f"project {project_id!r} has no storyboard yet; run `vidpipe render {project_id}`")
    provider = narration_provider(spec.providers.clips, services.settings)
    model = provider.model_for(spec)
    report = NarrationReport(NARRATION, provider.name, model, enabled=spec.narration)
    if not spec.narration:
        return report
    check_lines(spec, scenes)  # before anything is paid
    report.lines = lines = resolve_lines(services, spec, scenes)
    for line in lines:  # said before and measured too long: refused again without paying again
        if line.row is not None and not line.done and line.row.duration_s is not None:
            tempo_for(line.index, line.row.duration_s, spec.clip_duration)
    damaged: dict[int, str] = {}
    for line in lines:
        if line.done and line.row is not None and line.row.path:
            problem = read_checked(services.store, project_id, line.row.path, line.row.sha256)[1]
            if problem is not None:
                damaged[line.index] = problem
    if damaged and not repair and not provider.reproducible:
        texts = [line.text for line in lines if line.index in damaged]
        raise DamagedArtifacts(
            NARRATION,
            project_id,
            [
                Damage(f"the narration of {scene_label(i)}", p, f"{provider.name} cannot say it again the same")
                for i, p in damaged.items()
            ],
            narration_cost(services.settings, model, texts),
        )
    to_say = [line for line in lines if not line.done or line.index in damaged]
    report.projected_usd = narration_cost(services.settings, model, [line.text for line in to_say])
    if to_say:
        guard_budget(NARRATION, spent_usd(services, project_id), report.projected_usd, spec.max_cost_usd, project_id)
    voice, language = voice_of(spec, services)
    saying = {line.index for line in to_say}
    items: dict[int, ItemReport] = {}
    notes: dict[int, str | None] = {}
    failed: dict[int, Exception] = {}

    def told(line: LineState, action: Action) -> None:  # in the step's own thread, as each line ends
        done = len(items) + len(failed)
        progress(
            ProgressEvent(NARRATION, f"the narration of {scene_label(line.index)} {action.value}", done=done, total=len(lines))
        )

    for line in lines:
        if line.index not in saying:
            assert line.row is not None
            items[line.index] = ItemReport(
                line.index, Action.REUSED, line.fingerprint, duration_s=line.row.duration_s, path=line.row.path, detail=line.text
            )
            told(line, Action.REUSED)

    def say(line: LineState) -> tuple[ItemReport, str | None]:
        cancel.check()  # queued behind an interrupt: not started, nothing paid
        return _say(services, spec, line, provider, model, voice, language, damaged.get(line.index), cancel)

    # The lines do not depend on each other: at most narration_concurrency of them are said at once
    # (each in its thread: a TTS request, or an espeak-ng process). A line that fails (one measured
    # too long is recorded as paid first) does not stop the others, which are said and recorded;
    # the first failure in scene order is raised once they are done.
    cancel = CancelToken()
    workers = max(1, min(services.settings.narration_concurrency, len(to_say)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpipe-narration") as pool:
        futures = {pool.submit(say, line): line for line in to_say}
        try:
            for future in as_completed(futures):
                line = futures[future]
                try:
                    items[line.index], notes[line.index] = future.result()
                except Exception as exc:  # raised below, once the others are done
                    failed[line.index] = exc
                    told(line, Action.FAILED)
                else:
                    told(line, items[line.index].action)
        except BaseException as exc:
            # An interrupt (SIGTERM/SIGINT, a terminated run) lands here in the main thread: lines not
            # started are not started, and the pool's exit waits for those being said, so what is paid
            # is recorded before the step (and its lock) ends; the narrator's retry waits end early.
            cancel.cancel(f"{type(exc).__name__} in the narration step")
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if failed:
        raise failed[min(failed)]
    report.items = [items[line.index] for line in lines]
    for line in lines:
        note = notes.get(line.index)
        if note and note not in report.notes:
            report.notes.append(note)
    return report


def _say(
    services: Services,
    spec: ProjectSpec,
    line: LineState,
    provider: NarrationProvider,
    model: str,
    voice: str,
    language: str,
    damage: str | None,
    cancel: CancelToken,
) -> tuple[ItemReport, str | None]:
    """Say one line and record it (``line.row`` becomes its row); its item and the narrator's note.
    Runs in a worker thread: it writes only its own line, its own file and its own ledger row."""
    planned = estimated_seconds(line.text)
    request = SpeechRequest(spec.id, line.index, line.text, voice, language, planned_s=planned, scene_s=spec.clip_duration)
    speech = provider.speak(request, model, cancel)
    cost = usage_cost(services.settings, model, speech.usage)
    wav, seconds = speech.wav, wav_seconds(speech.wav)
    try:
        tempo = tempo_for(line.index, seconds, spec.clip_duration)
    except VidpipeError:
        _record(services, spec, line, provider.name, model, None, None, seconds, 1.0, speech.note, cost)  # paid: in the ledger
        raise
    if tempo != 1.0:
        wav = sped_up(services, wav, tempo)
        seconds = wav_seconds(wav)
    relpath = Layout.narration(line.index, line.fingerprint)
    services.store.write_bytes(spec.id, relpath, wav)
    line.row = _record(services, spec, line, provider.name, model, relpath, sha256_bytes(wav), seconds, tempo, speech.note, cost)
    detail = line.text + (f" (sped up {tempo:g}x)" if tempo != 1.0 else "") + (" (damaged file said again)" if damage else "")
    action = Action.REPAIRED if damage else Action.GENERATED
    item = ItemReport(line.index, action, line.fingerprint, cost_usd=cost, duration_s=seconds, path=relpath, detail=detail)
    return item, speech.note


def _record(
    services: Services,
    spec: ProjectSpec,
    line: LineState,
    provider: str,
    model: str,
    path: str | None,
    sha256: str | None,
    seconds: float,
    tempo: float,
    note: str | None,
    cost: float,
) -> NarrationLine:
    """Write what was said into the line's ledger row (made when there is none); without a path the
    row records a paid line that was refused (its cost counts, it is not done)."""
    key = {"project_id": spec.id, "scene_index": line.index, "fingerprint": line.fingerprint}
    with services.db.session() as s:
        row = s.scalars(select(NarrationLine).filter_by(**key)).first()
        if row is None:
            row = NarrationLine(**key, provider=provider, model=model, text=line.text)
            s.add(row)
        row.cost_usd = (row.cost_usd or 0.0) + cost
        row.duration_s, row.tempo, row.note = seconds, tempo, note
        if path is not None:
            row.status, row.path, row.sha256 = KeyframeStatus.DONE, path, sha256
        else:
            row.status = KeyframeStatus.FAILED
    return row


def sped_up(services: Services, wav: bytes, tempo: float) -> bytes:
    """``wav`` played ``tempo`` times as fast, its pitch kept (ffmpeg's atempo), 16-bit PCM."""
    with scratch_dir(services.settings.data_dir, "atempo") as work:
        source, target = work / "line.wav", work / "fast.wav"
        source.write_bytes(wav)
        media.run_ffmpeg(
            ["-i", str(source), "-filter:a", f"atempo={tempo:.4f}", "-c:a", "pcm_s16le", "-map_metadata", "-1", str(target)],
            what="narration speed-up",
        )
        return target.read_bytes()


def spoken_lines(
    services: Services, project_id: str, into: Path, on_missing: Callable[[str], None] | None = None
) -> list[SpokenLine]:
    """The project's words for the final mix, in scene order: each narrated scene's line with its
    WAV as made (checked against the ledger and copied into ``into``, a local folder of the
    caller's) and its measured length, from the scene's start; and each scene's dialogue cue
    without audio (Veo speaks it in the clip), its subtitle from ``DIALOGUE_OFFSET_S`` into the
    scene for as long as its words take at the storyboard's pace (at most to the scene's end).
    A narrated line not made (or damaged) is an error (the narration asset comes first); with
    ``on_missing`` it is told what is missing and the line is left out instead."""
    spec = load_spec(services, project_id)
    scenes = load_storyboard_rows(services, project_id)
    made = {line.index: line for line in resolve_lines(services, spec, scenes)}
    out: list[SpokenLine] = []
    for index, scene in enumerate(scenes):
        line = made.get(index)
        if line is not None:
            said = _said(services, project_id, line)
            if isinstance(said, str):
                if on_missing is None:
                    raise VidpipeError(said)
                on_missing(said)
            else:
                row, data = said
                path = into / Path(str(row.path)).name
                path.write_bytes(data)
                out.append(SpokenLine(index, line.text, "narration", float(row.duration_s or wav_seconds(data)), path, 0.0))
        cue = _quoted(scene.dialogue)
        if cue:
            length = max(0.5, min(estimated_seconds(cue), spec.clip_duration - DIALOGUE_OFFSET_S))
            out.append(SpokenLine(index, cue, "dialogue", round(length, 3), None, DIALOGUE_OFFSET_S))
    return out


def _said(services: Services, project_id: str, line: LineState) -> tuple[NarrationLine, bytes] | str:
    """A narrated line's ledger row and its WAV's bytes as the ledger recorded them, or why not."""
    row = line.row
    if row is None or not row.made or not row.path:
        return f"the narration of {scene_label(line.index)} is not made; materialize the narration asset first"
    data, damage = read_checked(services.store, project_id, row.path, row.sha256)
    if damage is not None or data is None:
        return f"the narration of {scene_label(line.index)}: {damage}; `vidpipe resume {project_id}` repairs it"
    return row, data


def _quoted(dialogue: str) -> str:
    """What is said in a dialogue cue: the words in quotes (the whole cue when it quotes nothing)."""
    text = dialogue.strip()
    if '"' in text:
        parts = text.split('"')
        said = " ".join(p.strip() for p in parts[1::2] if p.strip())
        return said or text
    return text
