"""Shared pytest support: one base seed per run, per-test seeds from it, the shared data folder.

Seeds. A run has one base seed: ``--seed BASE``, else ``$QMAC_SEED``, else a fresh one;
the header prints it. The ``seed`` fixture gives each test its own seed, a hash of BASE
and the test's id, so ``pytest 'tests/x.py::test_y[param]' --seed BASE`` gives that test
the same seed as the whole run did; a failing test that drew from it says so in a
``qmac seed`` section of its report. Hypothesis runs with ``--hypothesis-seed BASE`` unless
that flag is given, and with ``derandomize`` off even where Hypothesis would load its ``ci``
profile (it does when ``$CI`` is set): a derandomized run ignores the seed and draws the same
examples every time. Under pytest-xdist the workers take the controller's base seed.

Shared data. ``../shared`` beside the clone (or ``$QMAC_SHARED``) holds the TFLite oracle,
the models and the topologies; :func:`shared_file` (the ``shared_path`` fixture) returns a
path in it and fails the test, naming the file and where it was looked for, when it is
missing: a missing reference is an error, never a skip.

Tests marked ``slow`` are left out unless ``-m`` names them.
"""

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest

__all__ = ["derive_seed", "rerun_command", "shared_root", "shared_file"]

SEED_ENV = "QMAC_SEED"
SHARED_ENV = "QMAC_SHARED"

_seed_report_key = pytest.StashKey[str]()


def derive_seed(base, test_id):
    """The seed of test ``test_id`` (a pytest node id) in a run with base seed ``base``.

    A hash, so that it depends on nothing but the two (not on which other tests run or
    in what order) and neighbouring ids get unrelated seeds.
    """
    digest = hashlib.sha256(f"{base}:{test_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def shared_root():
    """``$QMAC_SHARED``, else the ``shared`` folder beside this clone."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def shared_file(relative):
    """The path of ``relative`` (e.g. ``"oracle/tflite_conv_int8.npz"``) in :func:`shared_root`.

    Fails the calling test (``pytest.fail``, not a skip) when the file is not there.
    """
    path = shared_root() / relative
    if not path.is_file():
        pytest.fail(f"shared data missing: {relative} is expected at {path} (the shared "
                    f"folder is ../shared beside the clone, or ${SHARED_ENV})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def shared_path():
    """:func:`shared_file`, as a fixture: ``shared_path("models/digits_cnn.tflite")``."""
    return shared_file


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when ``-m`` names them (``-m slow``, ``-m "slow or rtl"``)."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


# --- seeds -----------------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=None,
                     help=f"base seed of the randomized tests (default: ${SEED_ENV} or a fresh "
                          "one); each test's seed is derived from it and the test's id")


def _base_seed(config):
    worker = getattr(config, "workerinput", None)
    if worker is not None and "qmac_seed" in worker:
        return worker["qmac_seed"]
    seed = config.getoption("--seed")
    if seed is None and os.environ.get(SEED_ENV):
        seed = int(os.environ[SEED_ENV])
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    return seed


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config._qmac_seed = _base_seed(config)
    # Before Hypothesis's own pytest_configure reads its flag (tryfirst), so that its
    # tests draw from the same base seed; an explicit --hypothesis-seed still wins.
    if getattr(config.option, "hypothesis_seed", "absent") is None:
        config.option.hypothesis_seed = str(config._qmac_seed)
    if getattr(config.option, "hypothesis_profile", None) is not None:
        return                                  # the user chose a profile: theirs holds
    try:
        from hypothesis import settings
    except ImportError:
        return
    # Keep the active profile (ci's deadline, database and health checks) but let the
    # seed decide the examples.
    settings.register_profile("qmac-seeded", parent=settings.default, derandomize=False)
    settings.load_profile("qmac-seeded")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: every worker uses the controller's base seed."""
    node.workerinput["qmac_seed"] = node.config._qmac_seed


def pytest_report_header(config):
    base = config._qmac_seed
    return (f"qmac seed: {base} (rerun everything with --seed {base}, one test with "
            f"pytest 'TEST_ID' --seed {base})")


def rerun_command(config, nodeid):
    """The command that runs test ``nodeid`` alone with this run's base seed."""
    return f"python -m pytest '{nodeid}' --seed {config._qmac_seed}"


@pytest.fixture
def seed(request):
    """This test's seed: :func:`derive_seed` of the run's base seed and the test's id."""
    value = derive_seed(request.config._qmac_seed, request.node.nodeid)
    request.node.stash[_seed_report_key] = (
        f"this test's seed {value} comes from base seed {request.config._qmac_seed}; rerun "
        f"it alone with: {rerun_command(request.config, request.node.nodeid)}")
    return value


@pytest.fixture
def rng(seed):
    """A numpy Generator seeded with :func:`seed`."""
    return np.random.default_rng(seed)


@pytest.fixture
def rerun(request):
    """:func:`rerun_command` of the requesting test."""
    return rerun_command(request.config, request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        text = item.stash.get(_seed_report_key, None)
        if text is None and getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            text = (f"Hypothesis ran with seed {item.config.getoption('hypothesis_seed')}; "
                    f"rerun this test with: {rerun_command(item.config, item.nodeid)}")
        if text is not None:
            report.sections.append(("qmac seed", text))
    return report
