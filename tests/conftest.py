import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def writer_env():
    """One real LibreOffice under Xvfb for the whole session; each test resets it to a fresh document."""
    if not shutil.which("soffice"):
        pytest.fail("LibreOffice is not installed; run `make setup` (CI installs it in .ci/run)")
    from lamforge.env import WriterEnv

    env = WriterEnv(max_steps=30)
    yield env
    env.close()
