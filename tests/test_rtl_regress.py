"""RTL regression of the generated GEMM engine: cocotb in Verilator and Icarus.

Five configurations cover, between them: both dataflows; non-square arrays with a side
that is not a power of two (3x5, 5x3); a 1x1 array; unsigned 4-bit activations and
unsigned 6-bit weights with unsigned 6-bit outputs; uint8 activations; 16-bit operands;
raw accumulators that wrap (18 bits with 8-bit operands, 32 bits with 16-bit ones);
requantized int8 with TFLite oracle convolutions (both dataflows, both simulators).

Six low-bit configurations (``LOWBIT``) cover the xnor and bit-serial PE modes in both
dataflows and with every output stage: requantized, threshold bits and raw accumulators
that wrap; words of 2, 4 and 8 elements; signed and unsigned bit-serial operands, with
GEMMs on 1 plane and on the most planes of each operand; ternary-capable signed 2-bit
weights.
Each runs ``tests/cocotb/gemm_tb.py`` through :func:`hw.regress.run_regression`: the
edge cases of :mod:`gemm_jobs` plus random GEMMs back to back under random stalls, and
(in Icarus) the edge cases stall-free, where every GEMM's count must also equal the
cycle model's stall-free ``gemm_cycles``. When ``sim.engine_model`` exists, every GEMM's
cycle count must equal the model's prediction on the very stall patterns applied.

Builds are cached across pytest runs in pytest's cache (``.pytest_cache/d/qmac_rtl``),
one per configuration and simulator; a cold run builds five Verilator models. Each
test's seed comes from the run's base seed and the test's id (``tests/conftest.py``): a
run prints how to repeat it with pytest (``--seed BASE``) or with ``python -m hw.regress``
(the same configuration, GEMMs and per-test seed). The TFLite oracle is shared data: when
it is missing, the oracle configurations fail and say where it was expected.
"""

import argparse
import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import golden
from hw.config import ArrayConfig, add_config_arguments, config_from_args
from hw.regress import (
    DEFAULT_ORACLE_CASES,
    design_key,
    run_regression,
)
from tests.support import gemm_jobs

SIMULATORS = ("verilator", "icarus")

CONFIGS = {
    "ws3x5_int8": ArrayConfig(rows=3, cols=5, dataflow="ws", max_m=64, max_k=176, max_n=16),
    "os5x3_int8": ArrayConfig(rows=5, cols=3, dataflow="os", max_m=64, max_k=176, max_n=16),
    "ws1x1_au4_wu6": ArrayConfig(rows=1, cols=1, dataflow="ws", a_bits=4, a_signed=False,
                                 w_bits=6, w_signed=False, out_bits=6, out_signed=False,
                                 max_m=16, max_k=16, max_n=8),
    "os4x4_au8_raw18": ArrayConfig(rows=4, cols=4, dataflow="os", a_signed=False,
                                   requant=False, acc_bits=18, max_m=64, max_k=32, max_n=16),
    "ws4x4_a16w16_raw32": ArrayConfig(rows=4, cols=4, dataflow="ws", a_bits=16, w_bits=16,
                                      requant=False, acc_bits=32, max_m=64, max_k=32,
                                      max_n=16),
}
LOWBIT = {
    "ws3x4_xnor_p4": ArrayConfig(rows=3, cols=4, pe_mode="xnor", pack=4, max_m=40, max_k=100,
                                 max_n=12),
    "os4x3_xnor_p8_thr": ArrayConfig(rows=4, cols=3, dataflow="os", pe_mode="xnor", pack=8,
                                     threshold=True, max_m=40, max_k=200, max_n=12),
    "os2x3_xnor_p2_raw6": ArrayConfig(rows=2, cols=3, dataflow="os", pe_mode="xnor", pack=2,
                                      requant=False, acc_bits=6, max_m=24, max_k=64, max_n=8),
    "os3x4_bs_a4w3_p2": ArrayConfig(rows=3, cols=4, dataflow="os", pe_mode="bitserial",
                                    pack=2, a_bits=4, w_bits=3, max_m=30, max_k=40, max_n=12),
    "ws4x3_bs_au8w8_p4_raw20": ArrayConfig(rows=4, cols=3, pe_mode="bitserial", pack=4,
                                           a_signed=False, requant=False, acc_bits=20,
                                           max_m=40, max_k=64, max_n=10),
    "ws2x2_bs_au2w2_thr": ArrayConfig(rows=2, cols=2, pe_mode="bitserial", pack=2, a_bits=2,
                                      a_signed=False, w_bits=2, threshold=True, max_m=20,
                                      max_k=32, max_n=6),
}
CONFIGS.update(LOWBIT)
#: Configurations that also run the TFLite oracle cases (int8, requantizing).
ORACLE_CONFIGS = ("ws3x5_int8", "os5x3_int8")
#: GEMMs per stalled run (edge cases first); Icarus is about 4x slower per cycle.
GEMMS = {"verilator": 40, "icarus": 24}
STALL_PROB = 0.3

ORACLE = "oracle/tflite_conv_int8.npz"
MODEL_PRESENT = importlib.util.find_spec("sim.engine_model") is not None


@pytest.fixture
def rtl_build_root(request, tmp_path_factory):
    """Builds kept across pytest runs (pytest's cache), else in a temporary directory."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("qmac_rtl")) / "regress"
    return tmp_path_factory.mktemp("qmac_rtl")


def config_flags(config):
    """``python -m hw.regress`` flags that give ``config`` (its fields that differ from the
    defaults)."""
    default = ArrayConfig()
    flags = []
    for field in dataclasses.fields(ArrayConfig):
        value = getattr(config, field.name)
        if value == getattr(default, field.name):
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


def regress_command(name, sim, seed, gemms, stall_prob, oracle_cases=()):
    """The ``python -m hw.regress`` command that runs what :func:`_run` runs."""
    oracle = ["--oracle", ",".join(oracle_cases)] if oracle_cases else []
    return " ".join(["python -m hw.regress", *config_flags(CONFIGS[name]), "--sim", sim,
                     "--gemms", str(gemms), "--stall-prob", str(stall_prob), *oracle,
                     "--seed", str(seed)])


def _run(name, sim, build_root, tmp_path, seed, rerun, **kwargs):
    config = CONFIGS[name]
    print(f"{name} in {sim}: this test's seed is {seed}; the same test: {rerun}")
    if not {"explicit", "negative_control"} & set(kwargs):
        print("the same run outside pytest: " + regress_command(
            name, sim, seed, kwargs["gemms"], kwargs["stall_prob"],
            kwargs.get("oracle_cases", ())))
    run = run_regression(config, sim, seed=seed, build_dir=build_root / design_key(config) / sim,
                         work_dir=tmp_path, **kwargs)
    print(run.result.summary())
    for r in run.records:
        print(f"  {r['label']:40s} M {r['M']:3d} K {r['K']:3d} N {r['N']:3d} "
              f"match {r['match']} rtl_cycles {r['rtl_cycles']} model_cycles {r['model_cycles']}")
    return run


def _check(run):
    report = run.report
    errors = "\n".join((report or {}).get("errors", [])[:10])
    assert run.ok, f"{run.result.summary()}\n{errors}\n{run.result.log_tail(40)}"
    assert run.records and all(r["match"] for r in run.records)
    if MODEL_PRESENT:
        assert report["cycle_model"], "sim.engine_model exists but the testbench did not use it"
        assert all(r["rtl_cycles"] == r["model_cycles"] for r in run.records)
    return run.records


@pytest.mark.rtl
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("sim", SIMULATORS)
def test_gemm_regression_with_stalls(sim, name, rtl_build_root, tmp_path, seed, rerun,
                                     shared_path):
    # The oracle configurations need the oracle: shared_path fails the test without it.
    oracle = {}
    if name in ORACLE_CONFIGS:
        oracle = dict(oracle_cases=DEFAULT_ORACLE_CASES, oracle_path=shared_path(ORACLE))
    run = _run(name, sim, rtl_build_root, tmp_path, seed, rerun, gemms=GEMMS[sim],
               stall_prob=STALL_PROB, **oracle)
    records = _check(run)
    config = CONFIGS[name]
    labels = {r["label"] for r in records}
    assert {"tiling", "M=1", "K=1", "N=1", "1x1x1"} <= labels
    if config.pe_mode == "mac":
        assert "all-extreme" in labels
    elif config.pe_mode == "xnor":
        assert {"all-ones", "all-zeros", "ones-zeros", "zeros-ones", "K=P+1"} <= labels
    else:
        top = (config.a_bits, config.w_bits)
        planes = {(r["a_planes"], r["w_planes"]) for r in records}
        assert {(1, 1), top, (1, top[1]), (top[0], 1)} <= planes
    assert (sum(r["label"].startswith("oracle:") for r in records)
            == len(oracle.get("oracle_cases", ())))
    if config.threshold:
        assert "threshold-edges" in labels
    elif not config.requant:
        assert any(r["wrapped"] for r in records), "no GEMM wrapped the accumulator"
    else:
        assert {"left-shift", "clamp"} <= labels


@pytest.mark.rtl
@pytest.mark.parametrize("name", CONFIGS)
def test_gemm_regression_stall_free(name, rtl_build_root, tmp_path, seed, rerun):
    # In Icarus (the stalled runs use both simulators; this one checks timing).
    edges = len(gemm_jobs.edge_cases(CONFIGS[name], np.random.default_rng(seed)))
    run = _run(name, "icarus", rtl_build_root, tmp_path, seed, rerun, gemms=edges,
               stall_prob=0.0)
    records = _check(run)
    if MODEL_PRESENT:
        assert all(r["rtl_cycles"] == r["model_stall_free"] for r in records)


def test_oracle_gemms_give_tflite_output(shared_path):
    # The oracle GEMMs' expected results are TFLite's y, not the golden model's; the two
    # agree (tests/test_golden_oracle.py), so a passing RTL run matches both.
    cases = gemm_jobs.oracle_cases(CONFIGS["ws3x5_int8"], shared_path(ORACLE),
                                   DEFAULT_ORACLE_CASES)
    assert len(cases) == len(DEFAULT_ORACLE_CASES)
    for case in cases:
        assert (gemm_jobs.expected_output(CONFIGS["ws3x5_int8"], case.gemm)
                == case.expected).all(), case.label


@pytest.mark.rtl
def test_scoreboard_catches_a_wrong_result(rtl_build_root, tmp_path, seed, rerun):
    # Negative control: one expected bit flipped; the testbench must fail on exactly it.
    run = _run("ws3x5_int8", "icarus", rtl_build_root, tmp_path, seed, rerun, gemms=2,
               stall_prob=STALL_PROB, negative_control=True)
    assert (run.result.tests, run.result.failed) == (1, 1), run.result.summary()
    assert [r["mismatches"] for r in run.records] == [1, 0]
    assert "1 result beats wrong" in run.result.log_file.read_text()


@pytest.mark.rtl
def test_refused_command_is_reported_not_waited_for(rtl_build_root, tmp_path, seed, rerun):
    # M over max_m: the engine refuses the command (error high) and never answers; the
    # testbench must say so after its idle limit instead of waiting forever.
    run = _run("os5x3_int8", "icarus", rtl_build_root, tmp_path, seed, rerun, gemms=0,
               explicit=[{"shape": [CONFIGS["os5x3_int8"].max_m + 1, 2, 2]}], stall_prob=0.0)
    assert (run.result.tests, run.result.failed) == (1, 1), run.result.summary()
    assert re.match(r"^no transfer for \d+ cycles", run.report["errors"][0])
    assert re.match(r"^error was high in cycle \d+$", run.report["errors"][1])
    assert run.records[0]["rtl_cycles"] is None and not run.records[0]["match"]


# --- the generator's promises, without a simulator ------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_edge_cases_cover_the_extremes(name, seed):
    config = CONFIGS[name]
    cases = gemm_jobs.generate_cases(config, seed, 40)
    assert gemm_jobs.coverage_errors(config, cases) == []
    shapes = {c.label: c.shape for c in cases}
    assert shapes["M=1"][0] == 1 and shapes["K=1"][1] == 1 and shapes["N=1"][2] == 1
    m, k, n = shapes["tiling"]
    assert m > 2 * config.block and k > 2 * config.chunk and n > 2 * config.cols
    for size, unit in ((m, config.block), (k, config.chunk), (k, config.pack),
                       (n, config.cols)):
        assert unit == 1 or size % unit, "tiling sizes must not be multiples of the array"
    assert all(c.shape[0] <= config.max_m and c.shape[1] <= config.max_k
               and c.shape[2] <= config.max_n for c in cases)
    if config.pe_mode != "mac":
        check_lowbit_cases(config, cases)
        return
    a_lo, a_hi = golden.qrange(config.a_bits, config.a_signed)
    extremes = [c for c in cases if c.label in ("largest-sums", "most-negative-sums")]
    assert {int(c.gemm.a_zero_point) for c in extremes} <= {a_lo, a_hi}
    assert {int(v) for c in extremes for v in c.gemm.a.ravel()} <= {a_lo, a_hi}
    zero_points = {int(c.gemm.a_zero_point) for c in cases}
    assert {a_lo, a_hi} <= zero_points
    if config.requant:
        o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
        assert {o_lo, o_hi} <= {int(c.gemm.out_zero_point) for c in cases}
        clamp = next(c.gemm for c in cases if c.label == "clamp")
        unclamped = gemm_jobs.expected_output(config, dataclasses.replace(
            clamp, act_min=o_lo, act_max=o_hi))
        assert (unclamped < clamp.act_min).any() and (unclamped > clamp.act_max).any()
    else:
        assert gemm_jobs.wrap_reachable(config) is not None
        assert any(c.wrapped for c in cases if c.label == "wrap")


def check_lowbit_cases(config, cases):
    """What the low-bit edge cases promise, checked on the golden side."""
    by_label = {c.label: c for c in cases}
    if config.pe_mode == "xnor":
        assert all(set(np.unique(c.gemm.a)) <= {-1, 1} for c in cases)
        k = by_label["all-ones"].shape[1]
        assert (by_label["all-ones"].expected if not config.has_params else
                gemm_jobs.golden_accumulators(config, by_label["all-ones"].gemm)
                - (by_label["all-ones"].gemm.bias if config.requant else 0) == k).all()
        assert by_label["K=P+1"].shape[1] == config.pack + 1
    else:
        top = (config.a_bits, config.w_bits)
        for planes in ((1, 1), top, (1, top[1]), (top[0], 1)):
            case = by_label[f"planes a{planes[0]} w{planes[1]}"]
            assert (case.gemm.a_planes, case.gemm.w_planes) == planes
            a_lo, a_hi = golden.qrange(planes[0], config.a_signed)
            assert set(np.unique(case.gemm.a)) <= {a_lo, a_hi}
    if config.threshold:
        case = by_label["threshold-edges"]
        acc = gemm_jobs.golden_accumulators(config, case.gemm)
        # Some threshold equals a sum of its column, and both invert values occur.
        assert any((acc[:, c] == case.gemm.threshold[c]).any() for c in range(acc.shape[1]))
        assert set(case.gemm.invert.tolist()) == {0, 1}
    elif not config.requant:
        assert any(c.wrapped for c in cases if c.label == "wrap")


# --- the command line, without a simulator ---------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hw.regress", *args], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("name", CONFIGS)
def test_printed_regress_command_gives_the_same_configuration(name):
    # The command a run prints must rebuild exactly the configuration it ran.
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(config_flags(CONFIGS[name]))
    assert (config_from_args(args) or ArrayConfig()) == CONFIGS[name]
    command = regress_command(name, "icarus", 7, 3, 0.0, DEFAULT_ORACLE_CASES[:2])
    assert command.endswith(f" --sim icarus --gemms 3 --stall-prob 0.0 --oracle "
                            f"{DEFAULT_ORACLE_CASES[0]},{DEFAULT_ORACLE_CASES[1]} --seed 7")


def test_cli_help_explains_every_flag():
    proc = _cli("--help")
    assert proc.returncode == 0
    for flag in ("--sim", "--seed", "--gemms", "--stall-prob", "--waves", "--json",
                 "--build-dir", "--max-dim", "--oracle", "--rows", "--dataflow", "--max-k"):
        assert flag in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--sim", "questa"], r"argument --sim: invalid choice: 'questa'"),
    (["--stall-prob", "1.5"], r"--stall-prob must be a number in \[0, 1\), not '1\.5'"),
    (["--gemms", "-3"], r"--gemms must be a non-negative integer, not '-3'"),
    (["--max-dim", "4,4"], r"--max-dim must be a positive integer or M,K,N, not '4,4'"),
    (["--rows", "0"], r"ArrayConfig\.rows must be an integer in 1\.\.\d+, not 0"),
    (["--oracle", "--requant", "--acc-bits", "20"], r"--oracle needs an int8 requantizing"),
    (["--gemms", "0"], r"nothing to run: --gemms 0 and no --oracle"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
])
def test_cli_bad_flags_are_one_line_and_run_nothing(args, message, tmp_path):
    proc = _cli(*args, "--build-dir", str(tmp_path / "b"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.match(rf"^python -m hw\.regress: error: .*{message}", lines[0]), \
        proc.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.rtl
def test_cli_runs_prints_and_writes_records(rtl_build_root, tmp_path, seed):
    config = CONFIGS["ws3x5_int8"]
    out = tmp_path / "records.json"
    proc = _cli("--rows", "3", "--cols", "5", "--dataflow", "ws", "--max-m", "64", "--max-k",
                "176", "--max-n", "16", "--sim", "icarus", "--gemms", "3", "--seed", str(seed),
                "--json", str(out), "--build-dir",
                str(rtl_build_root / design_key(config) / "icarus"))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"seed {seed} (reproduce with --seed {seed})"
    assert lines[-1].startswith("PASS: 3/3 GEMMs bit-exact; ")
    records = json.loads(out.read_text())
    assert [r["label"] for r in records] == ["tiling", "all-extreme", "largest-sums"]
    for r, line in zip(records, lines[2:5], strict=True):
        assert set(r) >= {"M", "K", "N", "match", "rtl_cycles", "model_cycles"}
        assert f"M {r['M']:4d}  K {r['K']:4d}  N {r['N']:4d}  match" in line
