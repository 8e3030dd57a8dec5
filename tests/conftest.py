import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# What the marked tests need from the system, and the Debian package that provides it (`make setup` installs both).
HELP_DIR = Path("/usr/share/libreoffice/help/en-US/text")  # lamforge.data.plans.DEFAULT_HELP_DIR / "text"
NEEDS = {
    "office": (lambda: shutil.which("soffice") is not None, "LibreOffice (soffice)", "libreoffice-writer"),
    "help": (lambda: HELP_DIR.is_dir(), f"LibreOffice's help ({HELP_DIR})", "libreoffice-help-en-us"),
}


def missing_system_parts(items) -> list[str]:
    """One line per system part a selected test needs and this machine lacks."""
    marks = {mark.name for item in items for mark in item.iter_markers()}
    return [f"{what} is not installed (Debian package {package}); run `make setup`"
            for name, (present, what, package) in NEEDS.items() if name in marks and not present()]


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    # A missing LibreOffice fails the whole run once, with one message, before any test starts: no test skips
    # silently and none fails with an unrelated traceback.
    missing = missing_system_parts(items)
    if missing and not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.exit("cannot run the selected tests:\n" + "\n".join(missing), returncode=1)
    # `long` tests (tens of seconds to three minutes each, a third of the suite's time) run first. pytest-xdist hands
    # each worker a contiguous share of this order, and a worker that runs out steals from the end of the other's
    # queue; a long test near the end (the tiny pipeline sat in the last share) ran while the other worker idled.
    # First, the short tests fill in around them. The sort is stable: the rest keep their order.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_runtest_setup(item):
    # Under pytest-xdist (`make test`) collection runs in the workers, where pytest.exit crashes the worker and its
    # message is lost in an INTERNALERROR: there each test that needs a missing part fails with the message instead.
    missing = missing_system_parts([item])
    if missing:
        pytest.fail("cannot run this test:\n" + "\n".join(missing), pytrace=False)


@pytest.fixture(scope="session")
def writer_env():
    """One real LibreOffice under Xvfb for the whole session; each test resets it to a fresh document."""
    from lamforge.env import WriterEnv

    env = WriterEnv(max_steps=30)
    yield env
    env.close()


@pytest.fixture
def ray_env():
    """The environment for a command that starts Ray: its session folder (logs, sockets) goes into a temporary
    folder removed afterwards, not /tmp/ray. A short one: Ray's Unix socket paths must fit in 107 bytes."""
    folder = tempfile.mkdtemp(prefix="lfray-")
    yield dict(os.environ, RAY_TMPDIR=folder)
    shutil.rmtree(folder, ignore_errors=True)
