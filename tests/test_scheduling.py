"""The suite's xdist scheduling (tests/scheduling.py), on a tiny generated suite run by a real
`pytest -n 2 --dist loadfile`: each file stays on one worker, the grouped folder too, and the
units listed as slow start first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

from tests.scheduling import GROUPED_DIRS, SLOW, slowest_first, unit_of

REPO = Path(__file__).resolve().parents[1]


def test_units_are_files_except_grouped_folders():
    assert GROUPED_DIRS == ("tests/servers",)
    assert unit_of("tests/servers/test_browser.py::test_x[a::b]") == "tests/servers"
    assert unit_of("tests/servers/sub/test_y.py::C::test_z") == "tests/servers"
    assert unit_of("tests/serversx/test_a.py::test_b") == "tests/serversx/test_a.py"
    assert unit_of("tests/servers/test_celery.py::test_x") == "tests/servers/test_celery.py"
    assert unit_of("tests/dagster/test_healing.py::test_a[sqlite]") == "tests/dagster/test_healing.py"
    assert slowest_first(["a.py", SLOW[1], "b.py", SLOW[0]]) == [SLOW[0], SLOW[1], "a.py", "b.py"]


TEST_FILE = """
import os, time

def _log(name):
    with open(os.environ["SCHED_LOG"], "a") as f:
        f.write(f"{time.monotonic_ns()} {os.environ['PYTEST_XDIST_WORKER']} {name}\\n")

def test_1(request):
    _log(request.node.nodeid)
    time.sleep(0.2)

def test_2(request):
    _log(request.node.nodeid)

def test_3(request):
    _log(request.node.nodeid)
"""


def test_xdist_keeps_units_on_one_worker_and_starts_the_slow_ones_first(tmp_path: Path):
    files = ["tests/servers/test_srv_a.py", "tests/servers/test_srv_b.py", "tests/test_one.py", "tests/test_two.py"]
    files += [f"tests/core/test_more_{i}.py" for i in range(4)]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(TEST_FILE)
    # The repository's plugin, with a SLOW list naming the smallest unit first (xdist alone would
    # start with the folder of 6 tests).
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import tests.scheduling
        tests.scheduling.SLOW[:] = ["tests/test_two.py", "tests/core/test_more_3.py"]
        pytest_plugins = ["tests.scheduling"]
        """)
    )
    log = tmp_path / "order.log"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "SCHED_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "24 passed" in proc.stdout

    runs = sorted((int(t), worker, nodeid) for t, worker, nodeid in (line.split() for line in log.read_text().splitlines()))
    assert len(runs) == 24
    workers: dict[str, set[str]] = defaultdict(set)
    for _t, worker, nodeid in runs:
        workers[unit_of(nodeid)].add(worker)
    assert set(workers) == {"tests/servers", "tests/test_one.py", "tests/test_two.py"} | {f for f in files if "more" in f}
    assert all(len(w) == 1 for w in workers.values()), dict(workers)  # a unit never spans two workers
    first = {worker: unit_of(nodeid) for _t, worker, nodeid in reversed(runs)}  # each worker's first test
    assert sorted(first.values()) == ["tests/core/test_more_3.py", "tests/test_two.py"], runs
