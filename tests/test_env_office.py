"""Office's process handling, on a stand-in process instead of LibreOffice (the real office's hang and crash are in
test_env_writer.py, under the office marker), and how the office's binaries are found."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import lamforge.env.office as office_module
from lamforge.env.office import OFFICE_PATH, Office, OfficeNotInstalled, find_binary, require_binaries


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


def test_the_office_is_found_whatever_path_the_caller_has(monkeypatch, tmp_path):
    # A service or a notebook kernel may run lamforge with a PATH that lacks /usr/bin; the office runs with its own
    # (OFFICE_PATH), so it must not be reported missing. An office on the caller's PATH is found first.
    monkeypatch.setenv("PATH", str(tmp_path))
    soffice, xvfb = require_binaries()
    assert Path(soffice).parent.as_posix() in OFFICE_PATH.split(":") and Path(xvfb).name == "Xvfb"
    elsewhere = tmp_path / "soffice"
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    assert find_binary("soffice", "libreoffice") == str(elsewhere)
    monkeypatch.setattr(office_module, "OFFICE_PATH", str(tmp_path / "nowhere"))
    assert find_binary("Xvfb") is None
    with pytest.raises(OfficeNotInstalled, match=r"Xvfb not found\. Install with: apt-get install"):
        require_binaries()


def test_a_failed_xdotool_is_the_steps_error_not_a_crash(monkeypatch):
    """xdotool refusing a key (it exited 1 on '-' before key tokens went by keysym) escaped the step as a bare
    CalledProcessError, and the episode ended as an environment error; the office was fine."""
    from types import SimpleNamespace

    import lamforge.env.office as office_module
    from lamforge.env.office import Office, OfficeScriptError

    monkeypatch.setattr(office_module, "find_binary", lambda name: "/bin/false")
    fake = SimpleNamespace(display=":99", authority=None, proc=None, alive=lambda: True)
    with pytest.raises(OfficeScriptError, match=r"xdotool key -- minus failed \(exit 1\)"):
        Office.xdotool(fake, "key", "--", "minus")


@pytest.mark.office
def test_an_x_server_lamforge_starts_refuses_clients_without_its_cookie():
    """Without a cookie any local user could read the office's windows and type into them."""
    from lamforge.env.office import VirtualDisplay

    display = VirtualDisplay()
    try:
        assert display.authority.stat().st_mode & 0o777 == 0o600
        env = {k: v for k, v in os.environ.items() if k != "XAUTHORITY"}
        refused = subprocess.run(["xdotool", "getmouselocation"], env=dict(env, DISPLAY=display.display),
                                 capture_output=True, text=True, timeout=30)
        allowed = subprocess.run(["xdotool", "getmouselocation"], capture_output=True, text=True, timeout=30,
                                 env=dict(env, DISPLAY=display.display, XAUTHORITY=str(display.authority)))
        assert refused.returncode != 0 and "uthoriz" in refused.stderr
        assert allowed.returncode == 0, allowed.stderr
    finally:
        display.close()
    assert not display.folder.exists()
