"""The narrator on the google provider: Gemini text to speech through the real google-genai SDK
against the wire emulator, the real Dagster assets. Each narrated scene's line is said once, paid
once (ledger = estimate), reused while its WAV matches the ledger, said again only by the
project's repair policy; a line too long for its scene is refused before any request."""

from __future__ import annotations

import copy
import io
import wave

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import latest_metadata
from vidpipe_core.cost import AUDIO_TOKENS_PER_S, estimate, narration_cost
from vidpipe_core.errors import InvalidInput
from vidpipe_core.models import NarrationLine, Project, Scene
from vidpipe_core.spoken import SpokenLine
from vidpipe_core.steps.narration import make_narration, spoken_lines
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_core.steps.state import ledger_costs, resolve_state, write_storyboard_file
from vidpipe_core.steps.storyboard import stage_models
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import failure_message, register, render, repair_config
from vidpipe_dagster.status import project_status
from vidpipe_emulator.wire import parse_content_request

TTS = "gemini-2.5-flash-tts"
UP_TO_NARRATION = ["storyboard", "narration"]


def _wav(data: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _rows(services, project_id):
    with services.db.session() as s:
        return s.scalars(
            select(NarrationLine).where(NarrationLine.project_id == project_id).order_by(NarrationLine.scene_index)
        ).all()


def test_three_narrated_scenes_make_three_speech_requests_reused_after_and_repaired_by_policy(gp, tmp_path):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A lantern maker walks through a snowy village at night", id="lanterns", scenes=3, clip_duration=4)
    assert spec.narration and spec.voice == "Kore" and spec.language == "en-US"
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()
    state = resolve_state(services, spec.id)
    lines = [s.narration for s in state.scenes]
    assert all(lines), lines  # the storyboard wrote a line for every scene
    # Before anything is said, status projects what the lines cost (the estimate of these lines).
    expected = narration_cost(services.settings, TTS, lines)
    assert expected > 0
    assert project_status(services, spec.id)["cost"]["narration"]["projected_usd"] == pytest.approx(expected)
    assert emu.request_count("speech") == 0

    result = render(spec.id, assets=["narration"])
    assert result.success, failure_message(result)
    assert emu.request_count("speech") == 3
    records = emu.records("speech")
    assert sorted(r.prompt for r in records) == sorted(lines)
    assert {parse_content_request({"contents": [], "generationConfig": r.config}).voice for r in records} == {"Kore"}
    assert {r.config["speechConfig"]["languageCode"] for r in records} == {"en-US"}
    rows = _rows(services, spec.id)
    assert [r.scene_index for r in rows] == [0, 1, 2]
    for row, line in zip(rows, lines, strict=True):
        rate, samples = _wav(services.store.read_bytes(spec.id, row.path))
        assert rate == 24000
        seconds = len(samples) / rate
        assert row.duration_s == pytest.approx(seconds) and 0 < seconds <= spec.clip_duration
        assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 1000  # speech, not silence
        assert row.text == line and row.model == TTS
    # Ledger = estimate: what was recorded is what was projected for these lines.
    assert ledger_costs(services, spec.id).narration == pytest.approx(expected)
    assert estimate(services.settings, spec, stage_models(services, spec), lines=lines).narration_usd == pytest.approx(expected)
    meta = latest_metadata(vp_env.instance(), "narration", spec.id)
    table = meta["lines"].records
    assert [r.data["scene"] for r in table] == [1, 2, 3]
    assert [r.data["line"] for r in table] == lines
    assert [r.data["duration_s"] for r in table] == [round(r.duration_s, 3) for r in rows]
    assert meta["voice"] == "Kore" and meta["cost_usd"] == pytest.approx(expected, abs=1e-6)

    # The words for the final mix: one narration line per scene with its WAV as made.
    spoken = spoken_lines(services, spec.id, tmp_path)
    narrated = [s for s in spoken if s.kind == "narration"]
    assert [(s.scene_index, s.text) for s in narrated] == list(enumerate(lines))
    for s, row in zip(narrated, rows, strict=True):
        assert (
            isinstance(s, SpokenLine)
            and s.audio is not None
            and s.audio.read_bytes() == services.store.read_bytes(spec.id, row.path)
        )
        assert s.duration_s == pytest.approx(row.duration_s)

    # Again: nothing is said, nothing is paid.
    assert render(spec.id, assets=["narration"]).success
    assert emu.request_count("speech") == 3
    assert latest_metadata(vp_env.instance(), "narration", spec.id)["cost_usd"] == 0
    assert ledger_costs(services, spec.id).narration == pytest.approx(expected)

    # A damaged WAV: Gemini cannot say it again the same, so the step stops, naming the scene and
    # the cost, and pays only when the repair policy is asked for.
    services.store.write_bytes(spec.id, rows[1].path, b"RIFF not a wav")
    result = render(spec.id, assets=["narration"])
    assert not result.success
    assert "narration of scene 2" in failure_message(result) and "--repair" in failure_message(result)
    assert emu.request_count("speech") == 3
    result = render(spec.id, assets=["narration"], run_config=repair_config(["narration"]))
    assert result.success, failure_message(result)
    assert emu.request_count("speech") == 4
    repaired = _rows(services, spec.id)[1]
    rate, samples = _wav(services.store.read_bytes(spec.id, repaired.path))
    assert len(samples) / rate == pytest.approx(repaired.duration_s)
    assert ledger_costs(services, spec.id).narration == pytest.approx(
        expected + narration_cost(services.settings, TTS, [lines[1]])
    )


def test_a_line_too_long_for_its_scene_is_refused_before_any_request(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A fisherman mends his nets at the harbour", id="long-line", scenes=2, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()
    long_line = " ".join(["word"] * 14)  # 14 words at 2.5 a second: 5.6 s, more than 4 s x 1.15
    # `vidpipe edit` refuses it: exit 2, one line naming the scene and both lengths, nothing written.
    out = CliRunner().invoke(app, ["edit", spec.id, "--scene", "2", "--narration", long_line])
    assert out.exit_code == 2, out.output
    assert "scene 2" in out.output and "5.60 s" in out.output and "4 s" in out.output
    assert resolve_state(services, spec.id).scenes[1].narration != long_line
    # A stored plan holding such a line (written before the check) is refused by the step before any request.
    with services.db.session() as s:
        row = s.scalars(select(Scene).where(Scene.project_id == spec.id, Scene.index == 1)).one()
        row.narration = long_line
        project = s.get(Project, spec.id)
        document = copy.deepcopy(project.storyboard)
        document["storyboard"]["scenes"][1]["narration"] = long_line
        project.storyboard = document
    write_storyboard_file(services, spec.id, document)
    result = render(spec.id, assets=["narration"])
    assert not result.success
    message = failure_message(result)
    assert "scene 2" in message and "5.60 s" in message and "4 s" in message
    assert emu.request_count("speech") == 0
    assert ledger_costs(services, spec.id).narration == 0


def test_a_measured_line_a_little_long_is_sped_up_and_a_much_longer_one_refused(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A fox crosses a frozen river", id="tempo", scenes=1, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()
    words = len(resolve_state(services, spec.id).scenes[0].narration.split())
    # The emulated narrator speaks slowly: the line lasts 1.1 x the scene.
    emu.configure(speech_words_per_s=words / (spec.clip_duration * 1.1))
    result = render(spec.id, assets=["narration"])
    assert result.success, failure_message(result)
    (row,) = _rows(services, spec.id)
    assert row.tempo == pytest.approx(1.1, abs=0.01)
    rate, samples = _wav(services.store.read_bytes(spec.id, row.path))
    assert len(samples) / rate == pytest.approx(spec.clip_duration, abs=0.05)  # sped up, not cut
    assert row.duration_s == pytest.approx(len(samples) / rate)
    assert row.cost_usd > 0 and AUDIO_TOKENS_PER_S == 25

    # Far slower: 1.5 x the scene; said once (paid, in the ledger), then refused naming both lengths.
    spec2 = register("A heron waits in the reeds", id="too-slow", scenes=1, clip_duration=4)
    assert render(spec2.id, assets=["storyboard"]).success
    words = len(resolve_state(services, spec2.id).scenes[0].narration.split())
    emu.configure(speech_words_per_s=words / (spec2.clip_duration * 1.5))
    before = emu.request_count("speech")
    result = render(spec2.id, assets=["narration"])
    assert not result.success
    assert "scene 1" in failure_message(result) and "6.00 s" in failure_message(result)
    assert emu.request_count("speech") == before + 1
    assert ledger_costs(services, spec2.id).narration > 0
    # Asked again, it is refused from the ledger without paying again.
    assert not render(spec2.id, assets=["narration"]).success
    assert emu.request_count("speech") == before + 1


def test_editing_a_scenes_narration_says_only_that_line_again(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A baker opens her shop at dawn", id="edit-line", scenes=3, clip_duration=4)
    assert render(spec.id, assets=UP_TO_NARRATION).success
    services = vp_env.services()
    before = {r.scene_index: r.fingerprint for r in _rows(services, spec.id)}
    planned = resolve_state(services, spec.id)
    assert emu.request_count("speech") == 3
    out = CliRunner().invoke(app, ["edit", spec.id, "--scene", "2", "--narration", "The bread is warm."])
    assert out.exit_code == 0, out.output
    assert out.output.rstrip().splitlines()[0].endswith("; narration to say again: scene 2.")
    # The frames' and clips' prompts (so their fingerprints) do not depend on the line.
    edited = resolve_state(services, spec.id)
    assert [f.prompt for f in edited.frames] == [f.prompt for f in planned.frames]
    assert [c.prompt for c in edited.clips] == [c.prompt for c in planned.clips]
    assert resolve_state(services, spec.id).scenes[1].narration == "The bread is warm."
    assert render(spec.id, assets=["narration"]).success
    assert emu.request_count("speech") == 4
    assert emu.records("speech")[-1].prompt == "The bread is warm."
    current = resolve_state(services, spec.id)
    assert [s.narration for s in current.scenes][1] == "The bread is warm."
    meta = latest_metadata(vp_env.instance(), "narration", spec.id)
    assert [r.data["status"] for r in meta["lines"].records] == ["reused", "generated", "reused"]
    after = {r.scene_index: r.fingerprint for r in _rows(services, spec.id) if r.text == current.scenes[r.scene_index].narration}
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]


# -- lines said at once ------------------------------------------------------------------------------

SPEECH_LATENCY_S = 0.3


def _peak_overlap(records, latency_s: float) -> int:  # type: ignore[no-untyped-def]
    """The most speech requests the emulator provably held at once: each record's timestamp is its
    arrival, and the emulator answers a speech request no sooner than ``latency_s`` after it arrived,
    so the requests that arrived within ``latency_s`` of one another's arrival were all in flight at
    the last of those arrivals. A lower bound of the true peak (an answer may come later), never more;
    requests said one after another (each sent after the previous answer) give 1."""
    starts = sorted(r.timestamp for r in records)
    return max((sum(1 for s in starts if t <= s < t + latency_s) for t in starts), default=0)


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_the_lines_are_said_at_once_at_most_narration_concurrency_of_them(gp, monkeypatch, concurrency):
    vp_env, g = gp
    emu = g.emulator
    monkeypatch.setenv("VIDPIPE_NARRATION_CONCURRENCY", str(concurrency))
    emu.configure(latency={"speech": SPEECH_LATENCY_S})
    spec = register("A potter shapes a bowl, fires it and sells it at the market", id="potter", scenes=4, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    result = render(spec.id, assets=["narration"])
    assert result.success, failure_message(result)
    services = vp_env.services()
    lines = [s.narration for s in resolve_state(services, spec.id).scenes]
    records = emu.records("speech")
    assert sorted(r.prompt for r in records) == sorted(lines) and all(r.status == 200 for r in records)
    peak = _peak_overlap(records, SPEECH_LATENCY_S)
    # Never more than the bound (the count is a lower bound of the true peak: this cannot pass wrongly);
    # one at a time gives exactly 1, the lines said before this change included.
    assert peak <= concurrency
    assert peak == 1 if concurrency == 1 else peak >= 2, (concurrency, peak, [r.timestamp for r in records])
    # Whatever order the answers came in: the report and the ledger in scene order, each line paid once.
    assert [r.data["scene"] for r in latest_metadata(vp_env.instance(), "narration", spec.id)["lines"].records] == [1, 2, 3, 4]
    rows = _rows(services, spec.id)
    assert [(r.scene_index, r.text, r.made) for r in rows] == [(i, line, True) for i, line in enumerate(lines)]
    assert ledger_costs(services, spec.id).narration == pytest.approx(narration_cost(services.settings, TTS, lines))


def test_lines_measured_too_long_are_paid_and_refused_after_the_others_naming_the_first(gp, monkeypatch):
    """Said at once, a line measured too long does not stop the others: each is said and recorded
    (the refused ones as paid, not made), the progress counts every line, and the error names the
    first refused scene in scene order; asked again, nothing is paid again."""
    vp_env, g = gp
    emu = g.emulator
    monkeypatch.setenv("VIDPIPE_NARRATION_CONCURRENCY", "4")
    spec = register("A weaver threads her loom before dawn", id="weaver", scenes=4, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    short, long = "The loom waits.", " ".join(["thread"] * 10)  # 10 words: 4.0 s planned, fits 4 s x 1.15
    for scene, text in ((1, short), (2, long), (3, long), (4, short)):
        out = CliRunner().invoke(app, ["edit", spec.id, "--scene", str(scene), "--narration", text])
        assert out.exit_code == 0, out.output
    emu.configure(speech_words_per_s=2.0)  # measured: 10 words last 5.0 s, more than 4.6 s; 3 words 1.5 s
    services = vp_env.services()
    events: list[ProgressEvent] = []
    with pytest.raises(InvalidInput) as refused:
        make_narration(services, spec.id, progress=events.append)
    assert "scene 2" in str(refused.value) and "5.00 s" in str(refused.value) and "scene 3" not in str(refused.value)
    assert emu.request_count("speech") == 4  # the others were said, each once
    rows = _rows(services, spec.id)
    assert [(r.scene_index, r.made, r.path is not None) for r in rows] == [
        (0, True, True),
        (1, False, False),
        (2, False, False),
        (3, True, True),
    ]
    assert all(r.cost_usd > 0 for r in rows)  # the refused lines were paid: in the ledger
    assert sorted(e.done for e in events) == [1, 2, 3, 4] and {e.total for e in events} == {4}
    assert sorted(e.message for e in events) == [
        "the narration of scene 1 generated",
        "the narration of scene 2 failed",
        "the narration of scene 3 failed",
        "the narration of scene 4 generated",
    ]
    # Again: refused from the ledger before any request, the made lines kept.
    with pytest.raises(InvalidInput, match="scene 2"):
        make_narration(services, spec.id)
    assert emu.request_count("speech") == 4


def test_an_interrupt_starts_no_new_line_and_records_every_line_already_asked_for(gp, monkeypatch):
    """An interrupt in the step's own thread (where a signal lands): the lines not begun are never
    asked for, and a line already asked for is recorded before the step ends (paid, so in the
    ledger: a resume must not pay for it again)."""
    vp_env, g = gp
    emu = g.emulator
    monkeypatch.setenv("VIDPIPE_NARRATION_CONCURRENCY", "1")
    emu.configure(latency={"speech": SPEECH_LATENCY_S})
    spec = register("A beekeeper opens her hives on a summer morning", id="bees", scenes=4, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()

    def interrupt(_event: ProgressEvent) -> None:  # the first line said: stop
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_narration(services, spec.id, progress=interrupt)
    said = [r.prompt for r in emu.records("speech")]
    rows = _rows(services, spec.id)
    assert 1 <= len(said) <= 2  # the line that ended, and at most the next one its thread had begun
    assert sorted(said) == sorted(r.text for r in rows) and all(r.made for r in rows)
    report = make_narration(services, spec.id)  # a resume asks only for the lines never asked for
    assert emu.request_count("speech") == 4 and [i.index for i in report.items] == [0, 1, 2, 3]
    assert sorted(i.action.value for i in report.items) == sorted(["reused"] * len(said) + ["generated"] * (4 - len(said)))
