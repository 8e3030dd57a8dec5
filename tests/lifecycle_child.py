"""A lamforge process for tests/test_env_lifecycle.py: opens a WriterEnv, reports what it started, then waits to be
killed (`wait`), or, when a line comes on stdin, closes it (`close`) or ends without closing anything (`exit`).

With `--kill-after-connect`, the first office is killed right after its bridge connects (during Office.start), as a
crash at the worst moment would; the start must retry and succeed.
"""

import json
import os
import signal
import sys
import time

from lamforge.env import WriterEnv
from lamforge.env.office import Office

mode = sys.argv[1]
started: list[dict] = []
original_connect = Office._connect


def connect_then_record(self, uno):
    ctx = original_connect(self, uno)
    started.append({"pid": self.proc.pid, "profile": str(self.profile)})
    if "--kill-after-connect" in sys.argv and len(started) == 1:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
    return ctx


Office._connect = connect_then_record
env = WriterEnv()
obs, _ = env.reset()
office = env.office
report = {"offices": started, "display": office.display, "workdir": str(env.workdir),
          "alive": office.alive(), "window": obs["window"], "office_pid": office.proc.pid}
print(json.dumps(report), flush=True)
if mode == "wait":
    time.sleep(120)
else:  # once told to (the test first reads what the office holds), close cleanly, or just end as scripts do
    sys.stdin.readline()
    if mode == "close":
        env.close()
