"""The office's lifecycle: it starts whatever the caller's environment, a crash during its start is retried, and it
leaves nothing in /tmp on any exit path (a clean close, an exit without close, SIGTERM, SIGKILL).

Four lamforge processes run at once (tests/lifecycle_child.py). What each office left is found from the outside,
while it runs: its profile from its command line, its sockets from /proc/net/unix, its lu<pid>*.tmp folders, the
Xvfb's lock files. Other people's offices on the same machine are never counted.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamforge.env.office import OFFICE_PATH, office_environment

pytestmark = pytest.mark.office

CHILD = Path(__file__).with_name("lifecycle_child.py")
SRC = Path(__file__).resolve().parents[1] / "src"
# A Python other than the one lamforge runs on, whose bin/ first on PATH broke the office's start (std::bad_alloc).
FOREIGN_PYTHONS = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin")) + glob.glob("/opt/conda/bin"))


def office_footprint(pid: int, since: float) -> set[str]:
    """What a running office has in /tmp: its profile (from its command line), its sockets (its open socket inodes
    looked up in /proc/net/unix) and its lu<pid>*.tmp folders."""
    paths = set()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    for arg in cmdline:
        if arg.startswith(b"-env:UserInstallation=file://"):
            paths.add(arg.split(b"file://", 1)[1].decode())
    inodes = {m.group(1) for fd in os.listdir(f"/proc/{pid}/fd")
              if (m := re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}")))}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes:
            paths.add(fields[7])
    # lu<pid><random>.tmp: a name that starts with this pid may also be an older process's (pid 1234 vs 12345, or a
    # reused pid on a long-lived machine), so only folders made since the test started count.
    paths.update(p for p in glob.glob(f"/tmp/lu{pid}*.tmp") if os.stat(p).st_mtime >= since)
    return paths


def bound_sockets() -> set[str]:
    """Socket paths some live process has bound."""
    return {fields[7] for line in Path("/proc/net/unix").read_text().splitlines()[1:]
            if len(fields := line.split()) >= 8}


def left_behind(paths: set[str]) -> list[str]:
    """Paths that still exist, except sockets a live process has bound again: on a shared machine another Xvfb may
    take the display number a finished one gave back."""
    live = bound_sockets()
    return sorted(p for p in paths if os.path.lexists(p) and p not in live)


def display_files(display: str) -> set[str]:
    number = display.lstrip(":")
    return {f"/tmp/.X{number}-lock", f"/tmp/.X11-unix/X{number}"}


def start_child(mode: str, *flags: str, env: dict | None = None) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # each child starts its own Xvfb
    base["PYTHONPATH"] = os.pathsep.join([str(SRC), str(CHILD.parent)])
    return subprocess.Popen([sys.executable, str(CHILD), mode, *flags], env={**base, **(env or {})},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_report(child: subprocess.Popen, since: float) -> dict:
    line = child.stdout.readline()
    assert line, f"the child did not start: {child.stderr.read()[-3000:]}"
    report = json.loads(line)
    report["footprint"] = office_footprint(report["office_pid"], since) | display_files(report["display"])
    report["footprint"].add(report["workdir"])
    report["footprint"].update(office["profile"] for office in report["offices"])
    return report


def test_office_environment_is_built_not_inherited(monkeypatch, tmp_path):
    for name, value in {"PYTHONPATH": "/elsewhere", "PYTHONHOME": "/elsewhere", "LD_LIBRARY_PATH": "/elsewhere",
                        "UNO_PATH": "/elsewhere", "PATH": "/elsewhere/bin:/usr/bin", "LANG": "C.UTF-8"}.items():
        monkeypatch.setenv(name, value)
    env = office_environment(":5", tmp_path)
    assert env["PATH"] == OFFICE_PATH and env["DISPLAY"] == ":5" and env["TMPDIR"] == str(tmp_path)
    assert env["LANG"] == "C.UTF-8"
    assert not {"PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "UNO_PATH"} & set(env)


def test_no_office_leaves_anything_in_tmp_on_any_exit(tmp_path):
    hostile = {}
    if FOREIGN_PYTHONS:
        # As when a pyenv or conda Python runs a script that calls lamforge: its bin/ first on PATH.
        hostile = {"PATH": f"{FOREIGN_PYTHONS[-1]}:{os.environ['PATH']}", "UNO_PATH": str(tmp_path),
                   "LD_LIBRARY_PATH": str(Path(FOREIGN_PYTHONS[-1]).parent / "lib")}
    since = time.time() - 1
    children = {"close": start_child("close", "--kill-after-connect", env=hostile),
                "sigterm": start_child("wait"), "sigkill": start_child("wait"), "exit": start_child("exit")}
    try:
        reports = {name: read_report(child, since) for name, child in children.items()}
        clean = reports["close"]
        # The first office was killed right after its bridge connected: the start retried on a fresh profile.
        assert len(clean["offices"]) == 2 and clean["alive"] and clean["window"] == "main"
        assert clean["offices"][0]["profile"] != clean["offices"][1]["profile"]
        for name, report in reports.items():
            assert any(p.startswith("/tmp/OSL_PIPE_") for p in report["footprint"]), (name, report["footprint"])
        for name in ("close", "exit"):
            children[name].stdin.write("go\n")
            children[name].stdin.flush()
        children["sigterm"].send_signal(signal.SIGTERM)
        children["sigkill"].send_signal(signal.SIGKILL)
        for name in ("close", "exit"):
            assert children[name].wait(60) == 0, children[name].stderr.read()[-3000:]
        for child in children.values():
            child.wait(30)
        deadline = time.time() + 20
        left = {}
        while time.time() < deadline:
            left = {name: left_behind(r["footprint"]) for name, r in reports.items()}
            if not any(left.values()):
                break
            time.sleep(0.2)
        assert left == {"close": [], "sigterm": [], "sigkill": [], "exit": []}
        if not FOREIGN_PYTHONS:
            pytest.skip("no second Python (pyenv, conda) on this machine to put first on PATH; the rest passed")
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
