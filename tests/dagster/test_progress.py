"""Progress from the steps: every event reaches the in-process listeners (the CLI's live table);
the Dagster log keeps a scene's "still waiting" lines at most once a second, and every other line."""

from __future__ import annotations

import time
from types import SimpleNamespace

from vidpipe_core.steps import CLIPS
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_dagster import progress


def test_a_waits_heartbeats_are_logged_once_a_second_and_every_other_line_always() -> None:
    logged: list[str] = []
    context = SimpleNamespace(partition_key="p", log=SimpleNamespace(info=logged.append))
    heard: list[ProgressEvent] = []

    def listener(_partition: str, event: ProgressEvent) -> None:
        heard.append(event)

    progress.add_listener(listener)
    try:
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
    finally:
        progress.remove_listener(listener)

    assert len(heard) == 2 * polls + 2 and polls >= 15  # the live display sees every poll
    for scene in (1, 2):
        beats = [line for line in logged if line.startswith(f"[clips] Scene {scene}: video operation running")]
        assert beats[0].endswith("(poll 1)")  # the first is logged at once
        assert len(beats) == 2  # at 0 s and after 1 s, not once per poll
    assert logged[-2:] == ["[clips] Scene 1 generated", "[clips] Scene 2 generated"]
