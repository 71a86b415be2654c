"""How `make test` spreads the suite over its workers (`pytest -n 3 --dist loadfile`).

A *unit* goes to one worker as a whole, so its module fixtures are built once:

* a test file is one unit;
* everything under ``tests/servers/`` is ONE unit: those files share one webserver and one
  daemon (session fixtures in ``tests/servers/conftest.py``), which would otherwise start on every
  worker that gets one of them; but a file in ``OWN_UNIT`` uses none of them and is a unit alone.

Units are handed out slowest first (``SLOW``), then the rest by xdist's own order (most tests
first), so no long unit starts last while the other workers run dry. A worker gets its next unit
only when it needs one to go on (an xdist worker must know its next test before running its last
one), not two units ahead as xdist does by default: a unit queued behind a long one would wait
there while another worker idles.

Why paths and not ``@pytest.mark.xdist_group``: under pytest 9.2 that mark groups nothing (xdist
3.8 appends the group to ``item._nodeid``, which pytest 9 no longer reads for ``item.nodeid``), and
a forgotten mark would silently split a unit.

Keeping ``SLOW`` current: the suite prints its slowest tests (``--durations`` in pyproject.toml);
sum the times of each unit (setup + call + teardown) and list the units taking more than ~20 s,
slowest first. A unit missing from the list still runs, only later than it should.

Without xdist, or with another ``--dist``, this module changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

#: Folders whose files form one unit (see the module docstring).
GROUPED_DIRS = ("tests/servers",)
#: Files of a grouped folder that use none of its shared servers: a unit of their own, so they run
#: beside the rest of the folder (test_celery starts its own daemon, workers and databases).
OWN_UNIT = ("tests/servers/test_celery.py",)

#: Units slowest first. Figures: seconds in a one-process run on a 2-core machine loaded by other
#: jobs (2026-12-01, 2935 s in all), before the resume tests stopped waiting out the latency;
#: units marked "est." were added later (their authors' timings).
SLOW: list[str] = [
    "tests/dagster/test_healing.py",  # 480
    "tests/servers",  # 179 + the browser tests (skipped in that run)
    "tests/servers/test_celery.py",  # est. 180 (its own daemon, two workers, RabbitMQ, S3)
    "tests/dagster/test_resume_concurrency.py",  # 319
    "tests/test_cli_output.py",  # 296
    "tests/dagster/test_fault_campaign.py",  # 196 (one test)
    "tests/dagster/test_google_pipeline.py",  # 185
    "tests/dagster/test_repair.py",  # 176
    "tests/dagster/test_s3_pipeline.py",  # est. 90 on an idle machine
    "tests/test_cli_errors.py",  # 122
    "tests/postgres/test_postgres.py",  # 117
    "tests/dagster/test_dagster_cli.py",  # 115
    "tests/dagster/test_ci_recipe.py",  # est. 112 at load 4-5 (the clean-clone install and render: 90)
    "tests/dagster/test_inbox_sensor.py",  # 90
    "tests/dagster/test_render_pipeline.py",  # 90
    "tests/dagster/test_new_project_job.py",  # 74
    "tests/dagster/test_new_duplicates.py",  # 68
    "tests/dagster/test_delete.py",  # 62
    "tests/dagster/test_learned_polling.py",  # est. 55 (two 3-scene renders; the poisoned history ~35)
    "tests/dagster/test_scene_numbers.py",  # 55
    "tests/dagster/test_earlier_project.py",  # est. 50 (subprocess renders, an S3 variant)
    "tests/dagster/test_secrets.py",  # 55
    "tests/dagster/test_ui_metadata.py",  # 32
    "tests/dagster/test_hints.py",  # est. 25
    "tests/test_cli_input.py",  # 31
    "tests/dagster/test_characters.py",  # 30
    "tests/test_emulator.py",  # 27
    "tests/test_docs.py",  # est. 20 (two 2-scene renders by the runnable blocks; 18 s idle)
    "tests/dagster/test_celery_liveness.py",  # est. 10
]


def unit_of(nodeid: str) -> str:
    """The unit a test belongs to: its file, or its grouped folder."""
    path = nodeid.split("::", 1)[0]
    if path in OWN_UNIT:
        return path
    for folder in GROUPED_DIRS:
        if path.startswith(folder + "/"):
            return folder
    return path


def slowest_first(units: list[str]) -> list[str]:
    """``units`` with those of ``SLOW`` first, in its order; the others keep their order."""
    rank = {unit: i for i, unit in enumerate(SLOW)}
    return sorted(units, key=lambda unit: rank.get(unit, len(SLOW)))  # stable


def _scheduler_class() -> type:
    from xdist.scheduler import LoadFileScheduling

    class SuiteScheduling(LoadFileScheduling):  # type: ignore[misc]
        """``--dist loadfile`` with grouped folders, slowest units first, no look-ahead."""

        _ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # The first call comes once schedule() has built the whole work queue.
            if not self._ordered:
                queue = self.workqueue
                order = slowest_first(list(queue))
                for unit in order:
                    queue.move_to_end(unit)
                self._ordered = True
            super()._assign_work_unit(node)

        def _reschedule(self, node: Any) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # The worker blocks on its last test until it knows the next one: give it more
            # only then (xdist's default keeps up to two more tests queued).
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return SuiteScheduling


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    return _scheduler_class()(config, log)
