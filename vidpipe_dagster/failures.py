"""How a vidpipe error leaves a step: a `dg.Failure` of one line whose metadata names the error's
class and, for a provider error, the scene, so a caller tells a busy project from a failed stage
without parsing messages (`runner.failures` reads them back). A leaf: the assets, the create
ops and the runner all import it, and it imports none of them."""

import dagster as dg

from vidpipe_core.errors import VidpipeError

# The error's class (`ProjectBusy`, `InvalidInput`, ...): what the CLI maps to an exit code.
ERROR_CLASS_KEY = "vidpipe_error"
# ... and the 0-based scene (the frame, for keyframes) of a provider error that names one.
ERROR_SCENE_KEY = "vidpipe_scene"
# ... and the stage, where the step makes two assets (the clips step makes the keyframes too).
ERROR_STAGE_KEY = "vidpipe_stage"


def step_failure(exc: VidpipeError, *, stage: str | None = None) -> dg.Failure:
    """A one-line Dagster failure for ``exc``, not retried; its metadata names the error class,
    the stage that failed (``stage``, or the one the error names) and, when the error names one,
    the scene."""
    metadata: dict[str, str | int] = {ERROR_CLASS_KEY: type(exc).__name__}
    stage = getattr(exc, "stage", None) or stage
    if isinstance(stage, str):
        metadata[ERROR_STAGE_KEY] = stage
    scene = getattr(exc, "scene", None)
    if isinstance(scene, int):
        metadata[ERROR_SCENE_KEY] = scene
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=False)
