"""The google clips: Veo (first + last frame) through generate_videos on Vertex AI: the checks
before anything is spent, the submission, the wait (a learned schedule or a backoff, cancellable)
and the outcome (done, refused by the safety filter, failed)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.cost import priced
from vidpipe_core.errors import InvalidInput, ProviderError
from vidpipe_core.models import utcnow
from vidpipe_core.providers.base import ClipOutcome, ClipOutcomeKind, ClipRequest, PollCallback, PollObservation, Usage
from vidpipe_core.providers.google.client import _GoogleStage, log, redact
from vidpipe_core.providers.google.download import download_clip, video_decode_error
from vidpipe_core.retry import backoff_sleep
from vidpipe_core.scenes import scene_number
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.steps import CLIPS

if TYPE_CHECKING:
    from vidpipe_core.poll_types import PollSchedule


def operation_ref(operation_name: str, model: str) -> str:
    """A full operation name the SDK can poll on Vertex.

    ``operations.get`` derives the ``:fetchPredictOperation`` resource (the model path)
    from the name with ``rpartition('/operations/')``; a bare id would post to
    ``/:fetchPredictOperation``. Vertex returns full names
    (``projects/../publishers/google/models/<model>/operations/<id>``); short ones are
    completed with the model.
    """
    if "/operations/" in operation_name:
        return operation_name
    tail = operation_name if operation_name.startswith("operations/") else f"operations/{operation_name}"
    return f"publishers/google/models/{model}/{tail}"


class GoogleClips(_GoogleStage):
    """Veo clips (first + last frame) through generate_videos on Vertex AI."""

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.video_fast_model if spec.fast else self.settings.video_model

    def allowed_durations(self, spec: ProjectSpec) -> tuple[int, ...]:
        return tuple(self.settings.video_durations)

    def validate_clip_spec(self, spec: ProjectSpec) -> None:
        """Refuse what Veo would refuse, before anything is spent."""
        self._check(spec.clip_duration, spec.aspect_ratio, self.model_for(spec))

    def _check(self, duration: int, aspect_ratio: str, model: str) -> None:
        allowed = tuple(self.settings.video_durations)
        if duration not in allowed:
            raise InvalidInput(
                "clip_duration",
                f"{duration} s is not a clip length {model} accepts",
                allowed=", ".join(str(d) for d in allowed),
            )
        if aspect_ratio not in ASPECT_RATIOS:
            raise InvalidInput("aspect_ratio", f"{aspect_ratio!r} is not supported by {model}", allowed=", ".join(ASPECT_RATIOS))

    def submit(self, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> str:
        from google.genai import types

        self._check(request.duration_s, request.aspect_ratio, model)
        client = self.client.vertex()
        source = types.GenerateVideosSource(
            prompt=request.prompt,
            image=types.Image(image_bytes=request.start_png, mime_type="image/png"),
        )
        config = types.GenerateVideosConfig(
            last_frame=types.Image(image_bytes=request.end_png, mime_type="image/png"),
            duration_seconds=request.duration_s,
            aspect_ratio=request.aspect_ratio,
            generate_audio=request.generate_audio,
            negative_prompt=request.negative_prompt or None,
            seed=request.seed,
            number_of_videos=1,
        )
        operation = self._call(
            lambda: client.models.generate_videos(model=model, source=source, config=config),
            stage=CLIPS,
            scene=request.scene_index,
            cancel=cancel,
        )
        if not operation.name:
            detail = f": {_operation_error(operation.error)}" if operation.error else ""
            raise ProviderError(CLIPS, f"{model} returned no operation name{detail}", scene=request.scene_index)
        log.info("clips scene %d: submitted %s", scene_number(request.scene_index), operation.name)
        return operation.name

    def wait(
        self,
        operation: str,
        request: ClipRequest,
        model: str,
        on_poll: PollCallback | None = None,
        cancel: CancelToken = NEVER,
        schedule: PollSchedule | None = None,
    ) -> ClipOutcome:
        """Poll ``operation`` (by name alone: re-attaches after a crash) until it finishes.

        Without ``schedule``: at once, then after ``poll_initial_s`` doubling up to ``poll_max_s``.
        With one (learned from the ledger, vidpipe_core.polling): first when the schedule says,
        counted from the operation's submission (at once for one submitted long ago), then at its
        learned later polls still ahead, then every ``schedule.interval_s``. Either way no poll
        comes later than ``poll_timeout_s`` after the wait began, and the wait ends within half a second of ``cancel``. The outcome carries what
        the polls saw (``observed``: when it was last seen running and first seen done)."""
        from google.genai import types

        client = self.client.vertex()
        scene = request.scene_index
        s = self.settings
        ref = types.GenerateVideosOperation.model_validate({"name": operation_ref(operation, model)})
        started = time.monotonic()
        backoff = _backoff(s.poll_initial_s, s.poll_max_s)
        if schedule is not None:
            self._first_wait(schedule, min(schedule.first_wait_s(), s.poll_timeout_s), scene, on_poll, cancel)
        polls = 0
        running_seen_at: datetime | None = None  # when the last poll that found it running was sent
        while True:
            asked_at = utcnow()
            current = self._call(lambda: client.operations.get(ref), stage=CLIPS, scene=scene, cancel=cancel)
            seen_at = utcnow()
            polls += 1
            elapsed = time.monotonic() - started
            if current.done:
                log.info("clips scene %d: %s finished after %d polls (%.1fs)", scene_number(scene), operation, polls, elapsed)
                observed = PollObservation(running_seen_at, asked_at, seen_at)
                return replace(self._outcome(current, request, model, cancel), observed=observed)
            running_seen_at = asked_at
            if schedule is None:
                delay = next(backoff)
            else:
                delay = min(schedule.next_wait_s(schedule.since_submission_s(elapsed)), s.poll_max_s)
            if elapsed + delay > s.poll_timeout_s:
                raise ProviderError(
                    CLIPS,
                    f"operation {operation} did not finish within {s.poll_timeout_s:g} s; it may still "
                    "complete: re-run to re-attach to it without paying again",
                    scene=scene,
                )
            line = f"video operation running ({elapsed:.0f}s elapsed, poll {polls})"
            log.debug("clips scene %d: %s", scene_number(scene), line)
            if on_poll is not None:
                on_poll(line)
            backoff_sleep(delay, cancel)

    def _first_wait(
        self, schedule: PollSchedule, seconds: float, scene: int, on_poll: PollCallback | None, cancel: CancelToken
    ) -> None:
        """Sleep until the learned first poll without calling the API, with a progress line at the
        start and every ``poll_max_s`` (as often as the backoff's lines), cancellable throughout."""
        if seconds <= 0:
            return
        log.debug("clips scene %d: %s", scene_number(scene), schedule.describe())
        every = max(self.settings.poll_max_s, 0.05)
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            if on_poll is not None:
                on_poll(f"video operation running; first poll in {remaining:.0f}s ({schedule.basis()})")
            backoff_sleep(min(every, remaining), cancel)

    def _outcome(self, operation: Any, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> ClipOutcome:
        scene = request.scene_index
        if operation.error:
            return ClipOutcome(ClipOutcomeKind.FAILED, error=f"video operation failed: {_operation_error(operation.error)}")
        response = operation.response or operation.result
        videos = [v.video for v in (getattr(response, "generated_videos", None) or []) if v.video is not None]
        filtered = getattr(response, "rai_media_filtered_count", None) or 0
        reasons = [redact(r) for r in (getattr(response, "rai_media_filtered_reasons", None) or [])]
        if filtered > 0 or (not videos and reasons):
            return ClipOutcome(
                ClipOutcomeKind.REJECTED, reasons=reasons or ["filtered by the provider's safety policy (no reason given)"]
            )
        if not videos:
            return ClipOutcome(ClipOutcomeKind.FAILED, error="video operation finished without a video or a reason")
        video = videos[0]
        if video.video_bytes:
            data = video.video_bytes
        elif video.uri:
            data = download_clip(self, video.uri, scene, cancel)
        else:
            return ClipOutcome(ClipOutcomeKind.FAILED, error="video operation returned a video with neither bytes nor a URI")
        problem = video_decode_error(data)
        if problem is not None:
            return ClipOutcome(ClipOutcomeKind.FAILED, error=f"the returned clip is {problem} ({len(data)} bytes)")
        usage = priced(self.settings, model, Usage(video_seconds=float(request.duration_s)), audio=request.generate_audio)
        return ClipOutcome(ClipOutcomeKind.DONE, video=data, usage=usage)


def _backoff(initial_s: float, max_s: float) -> Iterator[float]:
    """The waits between polls without a learned schedule: ``initial_s``, doubling up to ``max_s``."""
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


def _operation_error(error: Any) -> str:
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
        text = f"{code}: {message}" if code is not None else str(message or error)
    else:
        text = str(error)
    return redact(text)
