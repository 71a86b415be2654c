"""The exit codes of the `vidpipe` command: one table, from the error a command (or a step of its
run) raised to the code the process exits with. docs/configuration.md ("Errors and exit codes")
shows it to people; tests/test_cli_exits.py checks that the page and the table agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidpipe_core.errors import ConfigurationError, InvalidInput, InvalidInputs, ProjectBusy, ProjectNotFound

if TYPE_CHECKING:
    from vidpipe_dagster.runner import StepFailure

# 1 a failure, 2 a usage or configuration error (fix the input or the setting named), 3 the project
# is busy (another run holds it), 130 interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Every error with an exit code of its own (any other exits EXIT_FAILURE). A run's failed step
#: names its error by class only (`StepFailure.error_class`), so a subclass is listed beside its base.
EXIT_CODES: dict[type[BaseException], int] = {
    InvalidInput: EXIT_USAGE,
    InvalidInputs: EXIT_USAGE,
    ProjectNotFound: EXIT_USAGE,
    ConfigurationError: EXIT_USAGE,
    ProjectBusy: EXIT_BUSY,
    KeyboardInterrupt: EXIT_INTERRUPTED,
}
_BY_NAME = {cls.__name__: code for cls, code in EXIT_CODES.items()}


def exit_code(exc: BaseException) -> int:
    """The exit code of a command that raised ``exc``."""
    for cls, code in EXIT_CODES.items():
        if isinstance(exc, cls):
            return code
    return EXIT_FAILURE


def class_exit_code(error_class: str | None) -> int:
    """The exit code of an error known by its class name (a step's `StepFailure.error_class`)."""
    return _BY_NAME.get(error_class or "", EXIT_FAILURE)


def run_exit_code(found: list[StepFailure]) -> int:
    """The exit code of a failed run, from the errors its steps raised: 3 when the project was
    busy, 2 when an input or setting must change, 1 otherwise."""
    codes = {class_exit_code(f.error_class) for f in found}
    for code in (EXIT_BUSY, EXIT_USAGE):  # busy first: another run holds the project, whatever else failed
        if code in codes:
            return code
    return EXIT_FAILURE
