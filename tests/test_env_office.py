"""Office's process handling, on a stand-in process instead of LibreOffice (the real office's hang and crash are in
test_env_writer.py, under the office marker)."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

from lamforge.env.office import Office


def test_close_swallows_what_terminate_raises_and_kills_the_process():
    # What a bridge dying during terminate() once raised out of close(): an exception pyuno could not even convert.
    def terminate():
        raise RuntimeError("Couldn't convert <traceback object> to a UNO type")

    office = Office.__new__(Office)  # a `sleep` in the office's place, and a desktop whose terminate() raises
    office.proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        office.desktop, office.ctx, office._scripts = SimpleNamespace(terminate=terminate), None, {}
        office.call_timeout, office.profile, office._own_display = 20.0, None, None
        office.close()
        assert office.proc.poll() is not None
    finally:
        if office.proc.poll() is None:
            office.proc.kill()
            office.proc.wait()
