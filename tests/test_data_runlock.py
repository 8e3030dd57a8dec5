"""Two collectors into one run folder: the second is refused at once with a clear message, before it writes or
starts an office; a killed collector leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from lamforge.data.collect import CollectConfig, collect
from lamforge.data.runlock import RunFolderBusy, lock_run_folder

HOLD = "import sys, time; from pathlib import Path; from lamforge.data.runlock import lock_run_folder; " \
       "lock = lock_run_folder(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"


@pytest.fixture
def first_collector(tmp_path):
    """Another process holding the run folder, as a collector in progress does."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert holder.stdout.readline().strip() == "held"
    yield holder
    holder.kill()
    holder.wait(10)


def test_a_second_collector_is_refused(first_collector, tmp_path):
    start = time.perf_counter()
    with pytest.raises(RunFolderBusy, match="being written by another collector"):
        collect(CollectConfig(out=tmp_path, n=2, workers=1, families=["bold"]), show_progress=False)
    assert time.perf_counter() - start < 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".collect.lock"]  # nothing written, nothing recovered

    from lamforge.data.cli import app

    result = CliRunner().invoke(app, ["collect", "--out", str(tmp_path), "--n", "2", "--workers", "1"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 1 and "being written by another collector" in result.output


def test_a_killed_collector_leaves_no_stale_lock(first_collector, tmp_path):
    first_collector.send_signal(signal.SIGKILL)
    first_collector.wait(10)
    lock_run_folder(tmp_path).release()  # the kernel released the dead process's lock
