"""Shared pytest fixtures: one seed per run, printed, reproducible with ``--seed``."""

import os
import random

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--seed", type=int, default=None,
                     help="seed for the randomized tests (default: QMAC_SEED or a fresh one)")


def _run_seed(config):
    seed = config.getoption("--seed")
    if seed is None and os.environ.get("QMAC_SEED"):
        seed = int(os.environ["QMAC_SEED"])
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    return seed


def pytest_configure(config):
    config._qmac_seed = _run_seed(config)


def pytest_report_header(config):
    return f"qmac seed: {config._qmac_seed} (reproduce with --seed {config._qmac_seed})"


@pytest.fixture
def seed(request):
    """The run's seed, mixed with the test's name so tests draw different data."""
    base = request.config._qmac_seed
    return (base + sum(map(ord, request.node.nodeid)) * 7919) % (1 << 32)


@pytest.fixture
def rng(seed):
    """A numpy Generator from :func:`seed`; the seed is printed in the failure report."""
    print(f"rng seed for this test: {seed}")
    return np.random.default_rng(seed)
