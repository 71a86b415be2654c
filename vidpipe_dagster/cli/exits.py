"""The exit codes of the `vidpipe` command (docs/configuration.md, "Errors and exit codes")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectBusy, ProjectNotFound

if TYPE_CHECKING:
    from vidpipe_dagster.runner import StepFailure

# Exit codes (README "Errors and exit codes"): 1 a failure, 2 a usage or configuration error
# (fix the input or the setting named), 3 the project is busy (another run holds it), 130 interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
USAGE_ERRORS = ("InvalidInput", "InvalidInputs", "ProjectNotFound", "ConfigurationError")


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, (InvalidInput, ProjectNotFound, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, ProjectBusy):
        return EXIT_BUSY
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def run_exit_code(found: list[StepFailure]) -> int:
    """The exit code of a failed run, from the errors its steps raised: 3 when the project was
    busy, 2 when an input or setting must change, 1 otherwise."""
    classes = {f.error_class for f in found}
    if "ProjectBusy" in classes:
        return EXIT_BUSY
    if classes & set(USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILURE
