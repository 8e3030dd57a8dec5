"""Runs several `lamforge` commands, in order, in every process of one launched process group, and writes their
exit codes as JSON to exit-codes-<rank>.json in the working folder (the processes share one stdout, where lines
would interleave): tests/test_train_distributed.py launches this once with torchrun, because one launch costs
many seconds of imports on a 2-core machine and one tiny training command a fraction of that.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/train_worker.py '[["train", ...], ...]'
"""

import json
import os
import sys
from pathlib import Path

import click

from lamforge.cli import app


def main() -> None:
    codes = []
    for args in json.loads(sys.argv[1]):
        try:
            # Without standalone mode click returns a typer.Exit's code instead of exiting (None: success).
            code = app(args, standalone_mode=False)
            codes.append(code if isinstance(code, int) else 0)
        except click.exceptions.Exit as stop:
            codes.append(stop.exit_code)
    Path(f"exit-codes-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(codes))


if __name__ == "__main__":
    main()
