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


def step_failure(exc: VidpipeError) -> dg.Failure:
    """A one-line Dagster failure for ``exc``, not retried; its metadata names the error class
    and, when the error names one, the scene."""
    metadata: dict[str, str | int] = {ERROR_CLASS_KEY: type(exc).__name__}
    scene = getattr(exc, "scene", None)
    if isinstance(scene, int):
        metadata[ERROR_SCENE_KEY] = scene
    return dg.Failure(description=str(exc), metadata=metadata, allow_retries=False)
