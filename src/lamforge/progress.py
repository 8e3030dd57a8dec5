"""Progress bars that also show in logs.

rich draws nothing while it runs when its console is not a terminal (`make demo > log`), so an hour of training
would leave no trace until it ended. This Progress prints a plain line per task at most every `log_every`
seconds, and when the task completes, in that case, with the time left while it runs; on a terminal it is rich's
bar unchanged.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TaskID, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def clock(seconds: float) -> str:
    """H:MM:SS with the hours counted on: strftime of a gmtime shows a 30-hour estimate as 06:00:00."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# rich estimates the speed from the last 30 s of updates by default: two or three updates of a CPU training phase,
# whose updates vary from 8 to 15 s, so its time left jumped between lines (2:25, 2:52, 4:03). Ten minutes of updates
# average that out and still follow a real change of speed (another job on the machine).
SPEED_WINDOW_S = 600.0


class Progress(RichProgress):
    def __init__(self, *columns, log_every: float = 30.0, **kwargs):
        if os.environ.get("LAMFORGE_NO_PROGRESS") == "1":
            kwargs["disable"] = True
        kwargs.setdefault("speed_estimate_period", SPEED_WINDOW_S)
        super().__init__(*columns, **kwargs)
        self._log_every = log_every
        self._logged: dict[TaskID, float] = {}
        self._plain = not self.console.is_terminal and not self.disable

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_log(task_id)

    def _maybe_log(self, task_id: TaskID) -> None:
        if not self._plain:
            return
        task = self._tasks[task_id]
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        # The first update always prints: a default of 0.0 would compare against time.monotonic(), which counts
        # from boot, so on a machine up for less than log_every seconds nothing would print until the end.
        last = self._logged.get(task_id)
        if not finished and last is not None and now - last < self._log_every:
            return
        if finished and self._logged.get(task_id) == float("inf"):
            return
        self._logged[task_id] = float("inf") if finished else now
        fields = " ".join(f"{k} {v}" for k, v in task.fields.items() if v not in ("", None))
        total = "?" if task.total is None else f"{task.total:g}"
        elapsed = clock(task.elapsed or 0)
        # rich's estimate from the recent speed (SPEED_WINDOW_S), as its TimeRemainingColumn shows on a terminal: on a slower CPU
        # than the one a preset was sized on, the log says early how long the stage will take.
        left = "" if finished or task.time_remaining is None else \
            f" left {clock(task.time_remaining)}"
        line = f"{task.description}: {task.completed:g}/{total} {elapsed}{left} {fields}"
        self.console.print(line.rstrip(), highlight=False)


def track(sequence: Iterable[T], description: str, total: int | None = None, disable: bool = False) -> Iterator[T]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=disable) as progress:
        yield from progress.track(sequence, total=total, description=description)
