"""The progress of a run on stderr: a live table on a terminal, one line per event otherwise."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.table import Table

from vidpipe_core.steps import STAGES
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_dagster.cli.output import _note, _Options, err

if TYPE_CHECKING:
    import dagster as dg


class _Display:
    """A live table: one row per stage with its latest message and scene progress."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.rows: dict[str, tuple[str, str]] = {s: ("waiting", "") for s in STAGES}
        self.lock = threading.Lock()

    def __call__(self, partition: str, event: ProgressEvent) -> None:
        if partition != self.project_id:
            return
        with self.lock:
            count = f"{event.done}/{event.total}" if event.total else ""
            self.rows[event.stage] = (event.message, count)

    def render(self) -> Table:
        table = Table(title=f"vidpipe render {self.project_id}", expand=False)
        table.add_column("stage")
        table.add_column("progress", justify="right")
        table.add_column("latest")
        with self.lock:
            for stage, (message, count) in self.rows.items():
                table.add_row(stage, count, message)
        return table


def _render(project_id: str, assets: list[str] | None = None, run_config: dict[str, Any] | None = None) -> dg.JobExecutionResult:
    """Run `runner.render`, showing progress on stderr: a live table on a terminal, one line per
    event otherwise, Dagster's own log with --verbose. Dagster's console logger is otherwise
    silent: the run's log goes to a file when it fails (see `_finish`)."""
    from vidpipe_dagster import runner

    if _Options.verbose:
        return runner.render(project_id, assets=assets, run_config=run_config, log_level="DEBUG")
    if not err.is_terminal:

        def line(_partition: str, e: ProgressEvent) -> None:
            _note(f"[{e.stage}] {e.message}")

        return runner.render(project_id, assets=assets, run_config=run_config, listener=line, log_level="CRITICAL")
    display = _Display(project_id)
    with Live(display.render(), console=err, refresh_per_second=4) as live:
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(0.25):
                live.update(display.render())

        threading.Thread(target=refresh, daemon=True).start()
        try:
            return runner.render(project_id, assets=assets, run_config=run_config, listener=display, log_level="CRITICAL")
        finally:
            stop.set()
            live.update(display.render())
