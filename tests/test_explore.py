"""The trade-off explorer (``python -m explore``): spec errors, Pareto fronts, the cache,
failed points, the Dask path, and a tiny sweep with real synthesis and real plots.

The end-to-end sweep synthesizes two tiny binary engines with Yosys (iCE40 counts,
``area = "synth"``): a real ECP5 place and route of even a 1x1 engine took 2.5 minutes
on this shared machine, so Fmax is missing there (throughput uses the spec's given clock).
"""

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from explore import SpecError, dominates, load_spec, pareto_front, parse_spec
from explore import evaluate as explore_evaluate
from explore import sweep as explore_sweep
from explore.report import write_outputs
from hw.config import ArrayConfig
from sim.engine_model import gemm_schedule, run_patterns
from sim.schedule import schedule_gemm, sequence_patterns

ROOT = Path(__file__).resolve().parent.parent

TINY_TOPOLOGY = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                 "Channels, Num Filter, Strides,\n") + """\
conv1, 6, 6, 3, 3, 2, 4, 1,
conv2, 4, 4, 3, 3, 4, 3, 1,
"""

MODEL_SPEC = """
name = "model"
[target]
area = "none"
clock_mhz = 100
[defaults]
max_k = 288
max_n = 16
[[engine]]
pe_mode = "mac"
size = [1, 2]
bits = [8, 4]
[[engine]]
pe_mode = "xnor"
size = 2
pack = 4
[[workload]]
network = "tiny.csv"
[[workload]]
study = "cnn"
"""


def write_spec(tmp_path, text, topology=TINY_TOPOLOGY):
    (tmp_path / "tiny.csv").write_text(topology)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


# --- spec parsing -------------------------------------------------------------------------

BASE = '[[engine]]\nsize = 2\n[[workload]]\nnetwork = "resnet50"\n'


@pytest.mark.parametrize("text, message", [
    ("name = 3\n" + BASE, r"spec name must be a non-empty string, not 3"),
    ("colour = 1\n" + BASE, r"spec top level: unknown key 'colour'; allowed: name, .*"),
    ('[target]\nfpga = "virtex"\n' + BASE,
     r"spec target\.fpga must be one of ecp5-85k, .*ice40-hx8k, not 'virtex'"),
    ('[target]\narea = "asic"\n' + BASE,
     r"spec target\.area must be one of pnr, synth, none, not 'asic'"),
    ('[target]\nfreq_mhz = -5\n' + BASE,
     r"spec target\.freq_mhz must be a number in \(0, 2000\), not -5"),
    ('[target]\nspeed = 1\n' + BASE, r"spec \[target\]: unknown key 'speed'; allowed: fpga, .*"),
    ("bandwidth = 0\n" + BASE, r"spec bandwidth \(operand beats per cycle\) must be a number "
                               r"above 0, not 0"),
    ("dram_bytes_per_cycle = -1\n" + BASE,
     r"spec dram_bytes_per_cycle \(off-chip bytes per cycle\) must be a number above 0, "
     r"not -1"),
    ('dram_bytes_per_cycle = "fast"\n' + BASE,
     r"spec dram_bytes_per_cycle \(off-chip bytes per cycle\) must be a number .*'fast'"),
    ("dram_bytes_per_cycle = inf\n" + BASE,
     r"spec dram_bytes_per_cycle \(off-chip bytes per cycle\) must be finite, not inf; omit it .*"),
    ("dram_bytes_per_cycle = 2\ndram_latency = 1.5\n" + BASE,
     r"spec dram_latency must be a non-negative integer of cycles, not 1\.5"),
    ("dram_bytes_per_cycle = 2\ndram_latency = -1\n" + BASE,
     r"spec dram_latency must be a non-negative integer of cycles, not -1"),
    ("dram_latency = 3\n" + BASE, r"spec dram_latency needs dram_bytes_per_cycle .*"),
    ('[[workload]]\nnetwork = "resnet50"\n',
     r"spec needs at least one \[\[engine\]\] table .*"),
    ("[[engine]]\nsize = 2\n", r"spec needs at least one \[\[workload\]\] table .*"),
    ('[[engine]]\nrows = [2, 300]\n[[workload]]\nnetwork = "resnet50"\n',
     r"spec engine\[0\] \(rows=300\): ArrayConfig\.rows must be .*300"),
    ('[[engine]]\nsize = 2\nrows = 3\n[[workload]]\nnetwork = "resnet50"\n',
     r"spec engine\[0\]: give 'size' or 'rows', not both"),
    ('[[engine]]\nsize = []\n[[workload]]\nnetwork = "resnet50"\n',
     r"spec engine\[0\]\.size must be a value or a non-empty list, not \[\]"),
    ('[[engine]]\nwidth = 2\n[[workload]]\nnetwork = "resnet50"\n',
     r"spec engine\[0\]: unknown key 'width'; allowed: rows, cols, .*size, bits"),
    ('[[engine]]\npe_mode = "xnor"\nbits = 8\n[[workload]]\nnetwork = "resnet50"\n',
     r"spec engine\[0\] \(a_bits=8, pe_mode='xnor', w_bits=8\): ArrayConfig\.a_bits .*"),
    ('[[engine]]\nsize = 2\n[[workload]]\nnetwork = "nowhere"\n',
     r"spec workload\[0\]\.network must be a bundled network \(.*resnet50\) or a SCALE-Sim "
     r"topology file, not 'nowhere'"),
    ('[[engine]]\nsize = 2\n[[workload]]\nstudy = "vgg"\n',
     r"spec workload\[0\]\.study must be one of mlp, cnn, dws, not 'vgg'"),
    ('[[engine]]\nsize = 2\n[[workload]]\nstudy = "cnn"\nmethods = ["magic"]\n',
     r"spec workload\[0\]\.methods: 'magic' is not a study method; methods: float, .*"),
    ('[[engine]]\nsize = 2\n[[workload]]\nnetwork = "resnet50"\nstudy = "cnn"\n',
     r"spec workload\[0\] must have exactly one of network, tflite, study, not network, study"),
    ('[[engine]]\nsize = 2\n[[workload]]\ntflite = "missing.tflite"\n',
     r"spec workload\[0\]\.tflite must be a \.tflite file, not 'missing\.tflite' .*"),
    ('[[engine]]\nsize = 2\n[[workload]]\nnetwork = "resnet50"\nmethods = ["ptq"]\n',
     r"spec workload\[0\]\.methods is only for study workloads, not network"),
    ('[[engine]]\nsize = 2\n[[workload]]\nnetwork = "resnet50"\n[[workload]]\n'
     'network = "resnet50"\n',
     r"spec workload\[1\]\.name 'resnet50' is used twice; give each workload its own name"),
])
def test_bad_spec_is_one_line_naming_the_key(tmp_path, text, message):
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError, match=f"^{message}$") as info:
        load_spec(path)
    assert "\n" not in str(info.value)


def test_bad_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[[engine]\n")
    with pytest.raises(SpecError, match=r"^spec '.*broken\.toml' is not valid TOML: .*"):
        load_spec(path)


def test_cli_bad_spec_is_one_line(tmp_path):
    path = write_spec(tmp_path, '[target]\narea = "asic"\n' + BASE)
    proc = subprocess.run([sys.executable, "-m", "explore", str(path)], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m explore: error: spec target.area must be one of pnr, synth, none, not "
        "'asic' (see --help)"]


def test_grid_expands_lists_and_ties_aliases(tmp_path):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    names = [c.default_name for c in spec.engines]
    # size and bits are one axis each (1x1 and 2x2, a8w8 and a4w4), not rows x cols.
    assert names == ["qmac_ws_1x1_a8w8", "qmac_ws_1x1_a4w4", "qmac_ws_2x2_a8w8",
                     "qmac_ws_2x2_a4w4", "qmac_ws_2x2_xnor_p4"]
    assert all(c.max_k == 288 and c.max_n == 16 for c in spec.engines)
    assert [w.name for w in spec.workloads] == ["tiny", "study-cnn"]
    assert spec.target.clock_mhz == 100 and spec.bandwidth is None and spec.dram is None


def test_duplicate_engines_once():
    doc = {"engine": [{"size": 2}, {"rows": 2, "cols": [2, 3]}],
           "workload": [{"network": "resnet50"}]}
    names = [c.default_name for c in parse_spec(doc).engines]
    assert names == ["qmac_ws_2x2_a8w8", "qmac_ws_2x3_a8w8"]


# --- Pareto fronts ------------------------------------------------------------------------

def brute_force_front(points, maximize):
    usable = [i for i, p in enumerate(points) if all(v is not None for v in p)]
    front = []
    for i in usable:
        beaten = False
        for j in usable:
            better_somewhere = False
            worse_somewhere = False
            for a, b, up in zip(points[j], points[i], maximize, strict=True):
                gain = (a - b) if up else (b - a)
                better_somewhere |= gain > 0
                worse_somewhere |= gain < 0
            beaten |= better_somewhere and not worse_somewhere
        if not beaten:
            front.append(i)
    return front


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_pareto_front_matches_brute_force(rng, dims):
    for _ in range(200):
        n = int(rng.integers(0, 25))
        # Few distinct values, so that ties and duplicates are common.
        values = rng.integers(0, 6, size=(n, dims)).tolist()
        for row in values:
            if rng.random() < 0.1:
                row[int(rng.integers(dims))] = None
        maximize = [bool(b) for b in rng.integers(0, 2, size=dims)]
        assert pareto_front(values, maximize) == brute_force_front(values, maximize), \
            (values, maximize)


def test_pareto_front_small_cases():
    # Throughput up, LUTs down: (lut, ips)
    points = [(100, 5.0), (200, 9.0), (150, 4.0), (300, 9.0), (50, 1.0), (None, 99.0)]
    assert pareto_front(points, (False, True)) == [0, 1, 4]
    assert dominates((1, 2), (1, 1), (True, True))
    assert not dominates((1, 1), (1, 1), (True, True))
    assert pareto_front([(1, 1), (1, 1)], (True, True)) == [0, 1]
    with pytest.raises(ValueError, match=r"^point 0 has 1 objectives, not 2$"):
        pareto_front([(1,)], (True, True))


# --- the model path: cycles, bytes, accuracy ----------------------------------------------

def test_cycles_are_the_cycle_models_and_throughput_follows(tmp_path):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    with ThreadPoolExecutor(2) as ex:
        points = explore_sweep.run_sweep(spec, cache=tmp_path / "cache", executor=ex,
                                         progress=False)
    assert len(points) == len(spec.engines) * len(spec.workloads)
    by = {(p["engine"], p["workload"]): p for p in points}
    # The tiny topology on the 2x2 int8 engine: each layer one GEMM, run back to back with
    # one idle cycle between them (sim.perf's convention), counted here independently.
    config = ArrayConfig(rows=2, cols=2, max_k=288, max_n=16)
    shapes = [(16, 18, 4), (4, 36, 3)]
    expected = sum(gemm_schedule(config, *s).cycles for s in shapes) + 1
    p = by[("qmac_ws_2x2_a8w8", "tiny")]
    assert p["status"] == "ok" and p["cycles"] == expected
    assert p["macs"] == 16 * 18 * 4 + 4 * 36 * 3
    assert p["clock_source"] == "given clock"
    assert p["inferences_per_s"] == pytest.approx(100e6 / expected)
    assert p["gops"] == pytest.approx(2 * p["macs"] * 100e6 / expected / 1e9)
    # Bytes: 8-bit activations in beats of 2 elements, ceil(K / 2) beats per row, etc.
    acts = 16 * 9 * 16 + 4 * 18 * 16
    wgts = 4 * 9 * 16 + 3 * 18 * 16
    pars = (4 + 3) * (32 + 32 + 6)
    res = (16 * 2 + 4 * 2) * 16
    assert p["bytes_per_inference"] * 8 >= acts + wgts + res
    assert p["bytes_per_inference"] * 8 <= acts + wgts + res + pars + 7 * 64
    # Accuracy: the study's best record at the engine's PE mode and bit widths, only there.
    records = json.loads((ROOT / "docs/study/records.json").read_text())
    for (engine, workload), q in by.items():
        config = next(c for c in spec.engines if c.default_name == engine)
        match = [r["accuracy"] for r in records if r["net"] == "cnn"
                 and r["pe_mode"] == config.pe_mode and r["a_bits"] == config.a_bits
                 and r["w_bits"] == config.w_bits]
        if workload == "study-cnn" and match:
            assert q["accuracy"] == max(match)
        else:
            assert q["accuracy"] is None
    assert by[("qmac_ws_2x2_xnor_p4", "study-cnn")]["accuracy_method"] in ("binarynet",
                                                                           "xnor_net")


def _scheduled(config, layers):
    """Each layer's schedule, computed here with sim.schedule alone."""
    return [schedule_gemm(config, layer.m, layer.k, layer.n, groups=layer.repeats)
            for layer in layers]


def test_layers_larger_than_the_buffers_run_as_the_schedulers_commands():
    # A raw engine (no output stage): K can be split, the host adds the partial sums.
    config = ArrayConfig(rows=2, cols=2, max_k=10, max_n=3, max_m=5, requant=False)
    from sim.topology import Layer
    layers = [Layer.from_gemm("big", 7, 25, 7), Layer.from_gemm("small", 3, 4, 2, count=2)]
    schedules = _scheduled(config, layers)
    assert schedules[0].k_splits > 1  # the layer really is split along K, M and N
    shapes = [s for sched in schedules for s in sched.shapes()]
    assert all(m <= 5 and k <= 10 and n <= 3 for m, k, n in shapes)
    perf = explore_evaluate.workload_performance(config, layers)
    assert perf["macs"] == 7 * 25 * 7 + 2 * 3 * 4 * 2
    assert perf["gemms"] == len(shapes)
    assert perf["split_gemms"] == len(shapes) - 3  # 1 + 2 layer repeats
    # Back to back, one idle cycle between commands (sim.perf's convention).
    assert perf["cycles"] == sum(gemm_schedule(config, *s).cycles for s in shapes) + \
        len(shapes) - 1
    assert perf["stall_cycles"] == 0
    assert perf["bytes"] == sum(sched.bytes_total for sched in schedules)


def _back_to_back(config, shapes, bytes_per_cycle, latency):
    """Cycles of the commands back to back on the off-chip memory's patterns from cycle 0,
    from the first command to the last result."""
    valid, ready, _ = sequence_patterns(config, shapes, bytes_per_cycle, latency)
    records = run_patterns(config, shapes, valid, ready)
    return records[-1]["last"] - records[0]["first"] + 1


def test_off_chip_memory_adds_the_schedulers_stalls():
    config = ArrayConfig(rows=2, cols=2, max_k=10, max_n=3, max_m=5, requant=False)
    from sim.topology import Layer
    layers = [Layer.from_gemm("big", 7, 25, 7), Layer.from_gemm("small", 3, 4, 2)]
    shapes = [s for sched in _scheduled(config, layers) for s in sched.shapes()]
    free = explore_evaluate.workload_performance(config, layers)
    slow = explore_evaluate.workload_performance(config, layers, dram=(0.5, 3))
    expected = _back_to_back(config, shapes, 0.5, 3)
    assert slow["cycles"] == expected > free["cycles"]
    assert slow["stall_cycles"] == expected - free["cycles"]
    assert slow["bytes"] == free["bytes"]


def test_a_layer_the_scheduler_refuses_fails_its_point(tmp_path):
    # max_k 8 on requantizing engines: conv1 (K = 18) cannot be split, conv2 (K = 36) neither.
    text = MODEL_SPEC.replace("max_k = 288", "max_k = 8").replace(
        '[[workload]]\nstudy = "cnn"\n', "")
    spec = load_spec(write_spec(tmp_path, text))
    points = run(spec, tmp_path / "cache")
    assert points and all(p["status"] == "failed" for p in points)
    for p in points:
        assert re.search(r"^layer 'conv1' \(16x18x4\) cannot be scheduled on \S+: layer "
                         r"K = 18 is over the engine's max_k 8 and the engine requantizes",
                         p["reason"]), p["reason"]
        assert "\n" not in p["reason"]
    # The same engine without its requantizer runs it.
    config = ArrayConfig(rows=2, cols=2, max_k=8, max_n=16, requant=False)
    perf = explore_evaluate.workload_performance(config, list(spec.workloads[0].layers))
    assert perf["split_gemms"] > 0


def test_dram_keys_reach_the_points_and_their_cache_key(tmp_path):
    base = load_spec(write_spec(tmp_path, MODEL_SPEC))
    text = "dram_bytes_per_cycle = 1.5\ndram_latency = 4\n" + MODEL_SPEC
    spec = load_spec(write_spec(tmp_path, text))
    assert spec.dram == (1.5, 4) and base.dram is None
    cache = tmp_path / "cache"
    free = {(p["engine"], p["workload"]): p for p in run(base, cache)}
    slow = {(p["engine"], p["workload"]): p for p in run(spec, cache)}
    config = ArrayConfig(rows=2, cols=2, max_k=288, max_n=16)
    shapes = [(16, 18, 4), (4, 36, 3)]
    key = ("qmac_ws_2x2_a8w8", "tiny")
    assert slow[key]["cycles"] == _back_to_back(config, shapes, 1.5, 4)
    assert slow[key]["cycles"] > free[key]["cycles"]
    assert slow[key]["bytes_per_inference"] == free[key]["bytes_per_inference"]


# --- the cache: resume, failed points ------------------------------------------------------

def counting(monkeypatch):
    calls = []
    real = explore_sweep.evaluate_engine

    def wrapper(config, target, workloads, bandwidth, hardware, dram):
        calls.append((config.default_name, [w.name for w in workloads], hardware is None))
        return real(config, target, workloads, bandwidth, hardware, dram)

    monkeypatch.setattr(explore_sweep, "evaluate_engine", wrapper)
    return calls


def run(spec, cache):
    with ThreadPoolExecutor(1) as ex:
        return explore_sweep.run_sweep(spec, cache=cache, executor=ex, progress=False)


def test_second_run_computes_nothing(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    calls = counting(monkeypatch)
    first = run(spec, tmp_path / "cache")
    assert len(calls) == len(spec.engines)
    second = run(spec, tmp_path / "cache")
    assert len(calls) == len(spec.engines)
    assert second == first


def test_interrupted_sweep_resumes(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    reference = run(spec, tmp_path / "reference")
    real_step = explore_sweep._Bar.step
    steps = []

    def interrupt_at_third(self, text):
        steps.append(text)
        if len(steps) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the sweep waits for its workers
        real_step(self, text)

    monkeypatch.setattr(explore_sweep._Bar, "step", interrupt_at_third)
    with pytest.raises(KeyboardInterrupt):
        run(spec, tmp_path / "cache")
    monkeypatch.setattr(explore_sweep._Bar, "step", real_step)
    calls = counting(monkeypatch)
    assert run(spec, tmp_path / "cache") == reference
    # The three engines whose results had arrived are not computed again.
    finished = {text.split(":")[0] for text in steps}
    assert len(finished) == 3
    assert sorted(name for name, _, _ in calls) == sorted(
        c.default_name for c in spec.engines if c.default_name not in finished)


def test_report_only_computes_nothing(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    calls = counting(monkeypatch)
    with ThreadPoolExecutor(1) as ex:
        points = explore_sweep.run_sweep(spec, cache=tmp_path / "cache", executor=ex,
                                         progress=False, compute=False)
    assert calls == []
    assert {(p["status"], p["reason"]) for p in points} == {("not run", "not computed yet")}


def test_lost_point_recomputes_only_that_point(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    cache = tmp_path / "cache"
    reference = run(spec, cache)
    victim = spec.engines[2]
    lost = cache / (explore_sweep._point_key(victim, spec.workloads[1], None) + ".json")
    lost.unlink()
    calls = counting(monkeypatch)
    assert run(spec, cache) == reference
    # The engine's hardware came from the cache; only the lost workload ran.
    assert calls == [(victim.default_name, ["study-cnn"], False)]


def test_failed_points_are_recorded_not_fatal(tmp_path, monkeypatch):
    from hw.flow import pnr
    text = MODEL_SPEC.replace('area = "none"', 'area = "pnr"')
    spec = load_spec(write_spec(tmp_path, text))

    def fake_pnr(config, unit, target):
        if config.rows == 1:
            raise pnr.PnrError("nextpnr-ecp5 of qmac_ws_1x1 failed:\nrouting congestion")
        if config.pe_mode == "xnor":
            return {"fits": False, "reason": "does not fit on ECP5 LFE5U-85F: needs 9 of 8 DSPs",
                    "resources": {"luts": {"used": 5, "available": 9}}}
        return {"fits": True, "fmax_mhz": 50.0, "seconds": {},
                "resources": {"luts": {"used": 900, "available": 9}},
                "utilization": {"luts": {"used": 1000}, "flip_flops": {"used": 10},
                                "dsps": {"used": 4}, "brams": {"used": 2}}}

    monkeypatch.setattr(pnr, "place_and_route", fake_pnr)
    points = run(spec, tmp_path / "cache")
    by = {(p["engine"], p["workload"]): p for p in points}
    one = by[("qmac_ws_1x1_a8w8", "tiny")]
    assert one["status"] == "failed"
    assert one["reason"] == "PnrError: nextpnr-ecp5 of qmac_ws_1x1 failed: routing congestion"
    assert one["cycles"] is not None and one["inferences_per_s"] is None
    xnor = by[("qmac_ws_2x2_xnor_p4", "tiny")]
    assert (xnor["status"], xnor["luts"], xnor["fmax_mhz"]) == (
        "does not fit", 5, None)
    assert xnor["reason"].startswith("does not fit on ECP5")
    good = by[("qmac_ws_2x2_a8w8", "tiny")]
    assert (good["status"], good["luts"], good["dsps"], good["clock_source"]) == (
        "ok", 1000, 4, "post-route Fmax, ecp5-85k")
    assert good["gops_per_klut"] == pytest.approx(good["gops"])
    assert good["gops_per_dsp"] == pytest.approx(good["gops"] / 4)
    assert good["inferences_per_s"] == pytest.approx(50e6 / good["cycles"])
    # A failed engine is tried again on the next run; one that does not fit is not.
    calls = counting(monkeypatch)
    run(spec, tmp_path / "cache")
    assert [(name, hw) for name, _, hw in calls] == [
        ("qmac_ws_1x1_a8w8", True), ("qmac_ws_1x1_a4w4", True)]


def test_workload_an_engine_cannot_run_is_recorded(tmp_path, shared_path):
    model = shared_path("models/digits_cnn.tflite")
    text = (MODEL_SPEC.replace('network = "tiny.csv"', f'tflite = "{model}"')
            .replace("max_k = 288", "max_k = 512").replace("max_n = 16", "max_n = 64"))
    spec = load_spec(write_spec(tmp_path, text))
    points = run(spec, tmp_path / "cache")
    by = {(p["engine"], p["workload"]): p for p in points}
    assert by[("qmac_ws_2x2_a8w8", "digits_cnn")]["status"] == "ok"
    bad = by[("qmac_ws_2x2_xnor_p4", "digits_cnn")]
    assert bad["status"] == "failed" and bad["cycles"] is None
    assert bad["reason"].startswith("int8 TFLite layers need an engine with pe_mode 'mac'")


# --- Dask: the same code path on a distributed.LocalCluster --------------------------------

def test_dask_cluster_gives_the_local_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = load_spec(write_spec(tmp_path, MODEL_SPEC))
    local = explore_sweep.run_sweep(spec, cache=tmp_path / "local", jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        remote = explore_sweep.run_sweep(spec, cache=tmp_path / "dask",
                                         dask=cluster.scheduler_address, progress=False)
    assert remote == local
    assert all(p["status"] == "ok" for p in remote)
    assert len(list((tmp_path / "dask").glob("pt-*.json"))) == len(local)


# --- a tiny sweep end to end: real synthesis, real plots -----------------------------------

TINY_SYNTH_SPEC = """
name = "tiny"
[target]
area = "synth"
clock_mhz = 50
[defaults]
pe_mode = "xnor"
size = 1
max_k = 16
max_n = 4
max_m = 16
requant = false  # raw sums out: the scheduler splits K over max_k
[[engine]]
pack = [2, 4]
[[workload]]
network = "tiny.csv"
[[workload]]
study = "cnn"
"""


def check_png(path):
    import matplotlib.image
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= 400 and height >= 300
    rgb = image[..., :3].reshape(-1, 3)
    # Not blank: many distinct colours, and dark ink on the page.
    assert len(np.unique(np.round(rgb * 255), axis=0)) > 20
    assert (rgb.mean(axis=1) < 0.3).mean() > 0.001


@pytest.mark.synth
def test_tiny_sweep_with_real_synthesis_and_plots(tmp_path):
    if shutil.which("true") is None:
        pytest.skip("no shell")
    spec_path = write_spec(tmp_path, TINY_SYNTH_SPEC)
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-m", "explore", str(spec_path), "--out", str(out),
                           "--cache", str(cache), "--jobs", "2", "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"^4 points \(4 complete, 0 with a reason\) in \d+ s; wrote ", proc.stdout)
    doc = json.loads((out / "points.json").read_text())
    points = doc["points"]
    assert len(points) == 4
    for p in points:
        assert p["status"] == "ok"
        assert p["luts"] > 0 and p["flip_flops"] > 0  # Yosys's real iCE40 counts
        assert p["fmax_mhz"] is None and p["clock_source"] == "given clock"
    # pack 4 does twice the work per PE per cycle of pack 2: fewer cycles on the same net.
    by = {(p["pack"], p["workload"]): p for p in points}
    assert by[(4, "tiny")]["cycles"] < by[(2, "tiny")]["cycles"]
    assert by[(4, "study-cnn")]["accuracy"] is not None
    csv_lines = (out / "points.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("engine,workload,status")
    for name in ("throughput_vs_luts", "accuracy_vs_throughput"):
        check_png(out / f"{name}.png")
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    # No Fmax was measured, so there is no Fmax figure, and the report says what it has.
    assert not (out / "fmax_vs_size.png").exists()
    report = (out / "report.md").read_text()
    assert "![Inferences per second against LUTs](throughput_vs_luts.png)" in report
    assert "## Pareto-optimal engines, inferences/s against LUTs: tiny" in report
    assert "`python -m hw.build --rows 1 --cols 1 --pe-mode xnor --pack 2 " in report
    # The rerun is served from the cache (no synthesis): same points.
    again = subprocess.run([sys.executable, "-m", "explore", str(spec_path), "--out",
                            str(tmp_path / "again"), "--cache", str(cache), "--no-progress"],
                           capture_output=True, text=True, cwd=ROOT, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again" / "points.json").read_text())["points"] == points


def test_plots_and_report_from_records(tmp_path):
    # Fmax against size: one point per engine, front of (PEs up, Fmax up).
    points = []
    engines = [("mac", 4, 80.0, 1000), ("mac", 16, 60.0, 3000), ("xnor", 4, 90.0, 800),
               ("xnor", 16, 50.0, 3500)]
    for i, (mode, pes, fmax, luts) in enumerate(engines):
        p = {c: None for c in explore_sweep.COLUMNS}
        p.update(engine=f"e{i}", workload="w", status="ok", reason="", pe_mode=mode, pes=pes,
                 fmax_mhz=fmax, luts=luts, inferences_per_s=fmax * pes, accuracy=0.5 + i / 10,
                 accuracy_method="ptq", build_command="b", pnr_command="p", cycles=1)
        points.append(p)
    meta = {"spec_name": "t", "command": "python -m explore t.toml", "engines": 4,
            "workloads": 1, "target": {"fpga": "ecp5-85k", "area": "pnr"}, "bandwidth": None,
            "seconds": 1.0}
    files = write_outputs(points, tmp_path, meta)
    assert set(files["figures"]) == {"throughput_vs_luts", "accuracy_vs_throughput",
                                     "fmax_vs_size"}
    for paths in files["figures"].values():
        check_png(paths[0])
    report = files["report"].read_text()
    # inferences/s vs LUTs: e2 (800, 360) and e1 (3000, 960) are the front; e0 and e3 are not.
    section = report.split("## Pareto-optimal engines, inferences/s against LUTs: w")[1]
    table = section.split("##")[0]
    assert "`e2`" in table and "`e1`" in table and "`e0`" not in table and "`e3`" not in table
