"""The memory-backed testbench harness (hw.flow.harness): generated text, lint, and that the
regression through it sees exactly what the per-cycle drivers see, and catches what they catch.
"""

import importlib.util
import json
import os
import re
import subprocess

import pytest

from hw.config import ArrayConfig
from hw.flow.harness import TOPLEVEL, harness_verilog
from hw.flow.regress import design_key, prepare_design, run_regression
from hw.toolchain import find_simulator
from tests.support.cocotb_memory import BusyHistory
from tests.support.streams import StreamPatterns

MODEL_PRESENT = importlib.util.find_spec("sim.engine_model") is not None

SMALL = {
    "ws3x2_int8": ArrayConfig(rows=3, cols=2, dataflow="ws", max_m=24, max_k=40, max_n=8),
    "os2x3_raw": ArrayConfig(rows=2, cols=3, dataflow="os", requant=False, acc_bits=18,
                             max_m=24, max_k=40, max_n=8),
    "ws2x2_xnor_thr": ArrayConfig(rows=2, cols=2, pe_mode="xnor", pack=4, threshold=True,
                                  max_m=16, max_k=40, max_n=6),
}


@pytest.fixture
def build_root(request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return os.fspath(cache.mkdir("qmac_rtl")) + "/regress"
    return os.fspath(tmp_path_factory.mktemp("qmac_rtl"))


def _build_dir(root, config, sim):
    return f"{root}/{design_key(config)}/{sim}"


@pytest.mark.parametrize("name", SMALL)
def test_wrapper_is_deterministic_and_lint_clean(name, tmp_path):
    config = SMALL[name]
    paths = prepare_design(config, tmp_path, harness=True)
    wrapper = next(p for p in paths if p.name == f"{TOPLEVEL}.v")
    ports = json.loads((tmp_path / "qmac_engine.json").read_text())["ports"]
    assert wrapper.read_text() == harness_verilog("qmac_engine", ports)
    assert harness_verilog("qmac_engine", ports) == harness_verilog("qmac_engine", ports)
    assert ("par_mem" in wrapper.read_text()) == config.has_params
    sim = find_simulator("verilator")
    proc = subprocess.run([sim.executable, "--lint-only", "-Wall", "--quiet-stats",
                           "--top-module", TOPLEVEL, str(tmp_path / "qmac_engine.vlt"),
                           str(tmp_path / "qmac_engine.v"), str(wrapper)],
                          capture_output=True, text=True, env={**os.environ, **sim.env},
                          check=False)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stderr


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"beat_depth": 1000}, r"^beat_depth must be a power of two of at least 4, not 1000$"),
    ({"pattern_words": 2}, r"^pattern_words must be a power of two of at least 4, not 2$"),
])
def test_wrapper_refuses_bad_ring_sizes(kwargs, message):
    ports = [{"name": f"{s}__payload", "direction": "input", "width": 8}
             for s in ("cmd", "act", "wgt", "res")]
    with pytest.raises(ValueError, match=message):
        harness_verilog("engine", ports, **kwargs)


def test_wrapper_refuses_an_engine_without_its_streams():
    with pytest.raises(ValueError, match=r"^engine ports must include the cmd, act, wgt and "
                                         r"res streams, not \['act', 'cmd'\]$"):
        harness_verilog("engine", [{"name": "cmd__payload", "width": 4},
                                   {"name": "act__payload", "width": 4}])


def test_pattern_window_is_the_pattern(seed):
    patterns = StreamPatterns(seed, 0.4, ("cmd", "act"))
    window = patterns.window("act", 1000, 3100)
    assert (window == patterns.valid["act"][1000:3100]).all()
    assert (patterns.window("res", 5, 70) == patterns.ready[5:70]).all()
    assert len(patterns.window("cmd", 7, 7)) == 0


def test_busy_history_answers_like_the_samples():
    # busy high in 3..5 and 9..; error never.
    samples = [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    history = BusyHistory([3, 6, 9], busy_end=True, error_first=None)
    assert [history.busy_at(t) for t in range(len(samples))] == [bool(b) for b in samples]
    for start in range(len(samples)):
        for stop in range(start, len(samples)):
            low = next((t for t in range(start, stop + 1) if not samples[t]), None)
            assert history.first_low(start, stop) == low, (start, stop)


@pytest.mark.rtl
@pytest.mark.parametrize("name", SMALL)
def test_memory_harness_sees_what_the_drivers_see(name, build_root, tmp_path, seed):
    # Same job, same patterns: every record (match, first and last transfer cycles, the
    # cycle counts and the model's) must be identical between the two harnesses.
    config = SMALL[name]
    runs = {}
    for harness in ("memory", "driver"):
        runs[harness] = run_regression(config, "icarus", seed=seed, gemms=12, stall_prob=0.3,
                                       build_dir=_build_dir(build_root, config, "icarus"),
                                       work_dir=tmp_path / harness, harness=harness)
        assert runs[harness].ok, runs[harness].result.log_tail(30)
        assert runs[harness].report["harness"] == harness
    assert runs["memory"].records == runs["driver"].records
    assert len(runs["memory"].records) == 12


@pytest.mark.rtl
@pytest.mark.skipif(not MODEL_PRESENT, reason="no cycle model to disagree with")
def test_memory_harness_catches_a_wrong_cycle_count(build_root, tmp_path, seed):
    # Negative control: the model's count for GEMM 0 is off by one; the run must fail on it.
    config = SMALL["ws3x2_int8"]
    run = run_regression(config, "icarus", seed=seed, gemms=2, stall_prob=0.3,
                         build_dir=_build_dir(build_root, config, "icarus"),
                         work_dir=tmp_path, negative_control="cycles")
    assert (run.result.tests, run.result.failed) == (1, 1), run.result.summary()
    errors = run.report["errors"]
    assert len(errors) == 1 and re.match(r"^GEMM 0 \(.*\): RTL \d+ cycles", errors[0]), errors
    assert "RTL and cycle model disagree" in run.result.log_file.read_text()


@pytest.mark.rtl
def test_memory_harness_catches_a_wrong_result(build_root, tmp_path, seed):
    config = SMALL["os2x3_raw"]
    run = run_regression(config, "icarus", seed=seed, gemms=3, stall_prob=0.3,
                         build_dir=_build_dir(build_root, config, "icarus"),
                         work_dir=tmp_path, negative_control="result")
    assert (run.result.tests, run.result.failed) == (1, 1), run.result.summary()
    assert [r["mismatches"] for r in run.records] == [1, 0, 0]
    assert "1 result beats wrong" in run.result.log_file.read_text()


def test_bad_harness_and_negative_control_are_refused():
    config = SMALL["ws3x2_int8"]
    with pytest.raises(ValueError, match=r"^harness must be one of memory, driver, not 'fast'$"):
        run_regression(config, seed=1, harness="fast")
    with pytest.raises(ValueError, match=r"^negative_control must be one of result, cycles, "
                                         r"not 'bits'$"):
        run_regression(config, seed=1, negative_control="bits")
