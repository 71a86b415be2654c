"""Progress from the steps: every event reaches the in-process listeners (the CLI's live table);
the Dagster log keeps a scene's "still waiting" lines at most once a second, and every other line,
written in order by a thread of the step's own (the step waits for them at its end)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

from vidpipe_core.steps import CLIPS
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_dagster import progress


@contextmanager
def heard_live() -> Iterator[list[ProgressEvent]]:
    """Every event the in-process listeners (the CLI's live table) hear meanwhile."""
    heard: list[ProgressEvent] = []

    def listener(_partition: str, event: ProgressEvent) -> None:
        heard.append(event)

    progress.add_listener(listener)
    try:
        yield heard
    finally:
        progress.remove_listener(listener)


def test_a_waits_heartbeats_are_logged_once_a_second_and_every_other_line_always() -> None:
    logged: list[str] = []
    context = SimpleNamespace(partition_key="p", log=SimpleNamespace(info=logged.append))
    with heard_live() as heard:
        emit = progress.for_context(context)  # type: ignore[arg-type]
        started = time.monotonic()
        polls = 0
        while time.monotonic() - started < 1.5:  # two scenes polled every 50 ms for 1.5 s
            polls += 1
            for scene in (0, 1):
                emit(
                    ProgressEvent(
                        CLIPS, f"Scene {scene + 1}: video operation running (poll {polls})", scene=scene, heartbeat=True
                    )
                )
            time.sleep(0.05)
        emit(ProgressEvent(CLIPS, "Scene 1 generated", scene=0))
        emit(ProgressEvent(CLIPS, "Scene 2 generated", scene=1))
        progress.flush(context)  # type: ignore[arg-type]

    assert len(heard) == 2 * polls + 2 and polls >= 15  # the live display sees every poll
    for scene in (1, 2):
        beats = [line for line in logged if line.startswith(f"[clips] Scene {scene}: video operation running")]
        assert beats[0].endswith("(poll 1)")  # the first is logged at once
        assert len(beats) == 2  # at 0 s and after 1 s, not once per poll
    assert logged[-2:] == ["[clips] Scene 1 generated", "[clips] Scene 2 generated"]


def test_the_step_does_not_wait_for_the_event_log_and_flush_waits_for_every_line() -> None:
    logged: list[str] = []

    def slow_write(line: str) -> None:  # an event-log write on a busy machine
        time.sleep(0.05)
        logged.append(line)

    context = SimpleNamespace(partition_key="p", log=SimpleNamespace(info=slow_write))
    emit = progress.for_context(context)  # type: ignore[arg-type]
    started = time.monotonic()
    for k in range(10):
        emit(ProgressEvent(CLIPS, f"line {k}"))
    assert time.monotonic() - started < 0.25  # ten writes of 50 ms did not hold the step
    progress.flush(context)  # type: ignore[arg-type]
    assert logged == [f"[clips] line {k}" for k in range(10)]  # all of them, in order
    emit(ProgressEvent(CLIPS, "after the end"))  # a late line is written at once
    assert logged[-1] == "[clips] after the end"


def test_a_frames_opening_line_reaches_the_live_display_only_and_its_end_the_log() -> None:
    """A frame's "rendering …" (``opening``, as the keyframes and characters steps mark it) goes to the
    listeners only, its "… rendered" to both; a damaged frame's re-rendering is not an opening."""
    logged: list[str] = []
    context = SimpleNamespace(partition_key="p", log=SimpleNamespace(info=logged.append))
    with heard_live() as heard:
        emit = progress.for_context(context)  # type: ignore[arg-type]
        emit(ProgressEvent("keyframes", "rendering the start frame of scene 1", scene=0, opening=True))
        emit(ProgressEvent("keyframes", "the start frame of scene 1 rendered", scene=0, done=1))
        emit(ProgressEvent("keyframes", "re-rendering damaged the end frame of scene 1", scene=1))
        progress.flush(context)  # type: ignore[arg-type]
    assert [e.message for e in heard][0] == "rendering the start frame of scene 1"
    assert logged == [
        "[keyframes] the start frame of scene 1 rendered",
        "[keyframes] re-rendering damaged the end frame of scene 1",
    ]


def test_a_render_logs_each_frame_once_and_shows_its_start_live(vp_env) -> None:  # type: ignore[no-untyped-def]
    """Through the real steps: the live display hears "rendering …" for each sheet and frame; the
    run's Dagster log keeps only its "… rendered" line. Likewise the storyboard's "planning …" (its
    "storyboard written" is logged) and an animatic clip's "rendering …" (its "… generated" is)."""
    from vidpipe_dagster.runner import failure_message, register, render

    spec = register("A fox cub and an old owl watch the snow fall.", id="logged-once", scenes=2, clip_duration=1)
    with heard_live() as events:
        result = render(spec.id)
    assert result.success, failure_message(result)
    heard = [f"[{event.stage}] {event.message}" for event in events]
    logged = [e.user_message for e in vp_env.instance().all_logs(result.run_id) if e.dagster_event is None]
    for stage in ("characters", "keyframes"):
        opening = [line for line in heard if line.startswith(f"[{stage}] rendering ")]
        ended = [line for line in heard if line.startswith(f"[{stage}] ") and line.endswith(" rendered")]
        assert opening and len(opening) == len(ended), heard
        assert not set(opening) & set(logged) and set(ended) <= set(logged)
    planning = [line for line in heard if line.startswith("[storyboard] planning ")]
    assert len(planning) == 1 and planning[0] not in logged and "[storyboard] storyboard written" in logged
    rendering = [line for line in heard if line.startswith("[clips] ") and ": rendering " in line]
    generated = [line for line in heard if line.startswith("[clips] ") and line.endswith(" generated")]
    assert len(rendering) == len(generated) == 2, heard
    assert not set(rendering) & set(logged) and set(generated) <= set(logged)
