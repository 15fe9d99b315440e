"""One base seed reproduces every randomized test, alone or in a full run, Hypothesis too.

Each check runs a small test file under this repository's ``conftest.py`` in a fresh
pytest process (pytester), so that the inner run's seeds cannot leak into this one.
"""

import re
from pathlib import Path

import pytest

from tests.conftest import derive_seed

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")

SEEDED_TESTS = """
import pytest
from hypothesis import given, settings, strategies as st

@pytest.mark.parametrize("p", [1, 2, 3])
def test_param(p, seed, rng):
    print(f"SEED {seed} DRAW {rng.integers(1 << 62)}")
    assert p != 2, "fails on purpose"

def test_plain(seed):
    print(f"SEED {seed}")

@settings(max_examples=5, database=None)
@given(st.integers(0, 1 << 60))
def test_hypo(x):
    print(f"HYPO {x}")
"""


@pytest.fixture
def seeded(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_seeded=SEEDED_TESTS)

    def run(*args, env_seed=None):
        if env_seed is None:
            monkeypatch.delenv("QMAC_SEED", raising=False)
        else:
            monkeypatch.setenv("QMAC_SEED", str(env_seed))
        result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)
        text = result.stdout.str()
        return result, text
    return run


def seeds_in(text):
    return re.findall(r"SEED (\d+)", text)


def test_derive_seed_depends_on_base_and_id_only():
    assert derive_seed(5, "tests/a.py::t[1]") == derive_seed(5, "tests/a.py::t[1]")
    seeds = {derive_seed(base, f"tests/a.py::t[{p}]") for base in range(3) for p in range(30)}
    assert len(seeds) == 90
    assert all(0 <= s < 1 << 32 for s in seeds)


def test_one_test_rerun_with_the_base_seed_gets_the_same_seed(seeded):
    result, full = seeded("--seed", "5")
    result.assert_outcomes(passed=4, failed=1)
    assert "qmac seed: 5 " in full
    assert len(set(seeds_in(full))) == 3 + 1
    failing = "test_seeded.py::test_param[2]"
    # The failure report names the test's seed and the command that reruns it alone.
    match = re.search(r"this test's seed (\d+) comes from base seed 5; rerun it alone with: "
                      r"python -m pytest '(\S+)' --seed 5", full)
    assert match and match[2] == failing
    assert int(match[1]) == derive_seed(5, failing)
    hypothesis_draws = re.findall(r"HYPO (\d+)", full)
    assert len(hypothesis_draws) >= 5

    # That command, and Hypothesis's test alone, draw exactly what the full run drew.
    result, alone = seeded(failing, "test_seeded.py::test_hypo", "--seed", "5")
    result.assert_outcomes(passed=1, failed=1)
    draw = re.compile(rf"SEED {match[1]} DRAW (\d+)")
    assert draw.findall(alone) == draw.findall(full) != []
    assert re.findall(r"HYPO (\d+)", alone) == hypothesis_draws

    # Another base seed, here from $QMAC_SEED, changes every seed, Hypothesis's too.
    result, other = seeded("-k", "plain or hypo", env_seed=6)
    result.assert_outcomes(passed=2)
    assert seeds_in(other) == [str(derive_seed(6, "test_seeded.py::test_plain"))]
    assert seeds_in(other) != [str(derive_seed(5, "test_seeded.py::test_plain"))]
    assert re.findall(r"HYPO (\d+)", other) != hypothesis_draws
