"""Stop signals that end a lamforge command the way Ctrl-C does: its cleanup runs, its work so far is kept."""

from __future__ import annotations

import contextlib
import signal
import threading

# `kill`, a job scheduler's or a container's stop (SIGTERM) and a closed terminal (SIGHUP) end a process at once by
# default: a training run lost every update since its last periodic save (save_every; minutes on a CPU), and
# `lamforge run` left its temporary file beside the user's document.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_interrupt():
    """While the block runs, SIGTERM and SIGHUP raise KeyboardInterrupt, which a command answers as it answers
    Ctrl-C: training saves its resume state, `lamforge run` removes its temporary file and closes the office. Only
    in the main thread (the one where Python runs signal handlers), and only for a signal that still has its
    default action: a caller's own handler, or an ignore (nohup's SIGHUP), stands. The previous handlers come back
    after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS if signal.getsignal(sig) is signal.SIG_DFL}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
