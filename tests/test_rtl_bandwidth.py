"""Off-chip bandwidth on the RTL: command sequences of real layers, split by sim.schedule,
run in Verilator with the valid and ready patterns that a bandwidth implies
(:func:`sim.schedule.sequence_patterns`); every command's RTL cycle count must equal the
cycle model's on those patterns, and the one :func:`sim.schedule.sequence_cycles` (the
model's command-relative run that sim.perf uses) predicts.

The engines are configurations of ``tests/test_rtl_regress.py`` (their Verilator builds
are shared through pytest's cache): a requantizing 3x5 and a raw 4x4 (16-bit operands,
32-bit accumulators), whose small ``max_k`` splits K into commands whose partial sums the
host adds.
"""

import numpy as np
import pytest

from hw.regress import design_key, run_regression
from nets import load_tflite
from nets.lower import engine_layer_output, plan_network
from sim.schedule import dram_cycles, schedule_gemm, sequence_cycles, sequence_patterns
from tests.support.streams import ExplicitPatterns
from tests.test_rtl_regress import CONFIGS
from tests.test_rtl_regress import rtl_build_root as rtl_build_root  # the fixture

pytestmark = pytest.mark.rtl


def _run(config, entries, shapes, bytes_per_cycle, latency, build_root, tmp_path, seed):
    valid, ready, cycles = sequence_patterns(config, shapes, bytes_per_cycle, latency)
    patterns = ExplicitPatterns(valid, ready)
    print(f"{len(shapes)} commands at {bytes_per_cycle} B/cycle, latency {latency}: "
          f"{sum(cycles)} cycles; seed {seed}")
    run = run_regression(config, "verilator", seed=seed, gemms=0, explicit=entries,
                         build_dir=build_root / design_key(config) / "verilator",
                         work_dir=tmp_path, patterns=patterns.to_json())
    errors = "\n".join((run.report or {}).get("errors", [])[:10])
    assert run.ok, f"{run.result.summary()}\n{errors}\n{run.result.log_tail(40)}"
    assert [r["match"] for r in run.records] == [True] * len(shapes)
    rtl = [r["rtl_cycles"] for r in run.records]
    assert rtl == [r["model_cycles"] for r in run.records]
    assert rtl == cycles
    # sim.perf's network figures run the whole sequence in the model (sequence_cycles,
    # command-relative patterns in one run): the same counts as the RTL's. Each command
    # alone (dram_cycles) may differ by a few cycles (the activation stream's one-beat
    # buffer can hold the next command's first beat), never by more than 1 % in all.
    assert [r["cycles"] for r in sequence_cycles(config, shapes, bytes_per_cycle,
                                                  latency)] == rtl
    alone = sum(dram_cycles(config, s, bytes_per_cycle, latency) for s in shapes)
    print(f"RTL {sum(rtl)} cycles, commands alone {alone}")
    assert abs(sum(rtl) - alone) <= 0.01 * alone
    return rtl


@pytest.mark.parametrize(("name", "shape", "bytes_per_cycle", "latency"), [
    # ResNet-50 CB2a_2 (3x3 conv, 64 -> 64 channels) scaled: K = 3 x 3 x 16; M and N over
    # the engine's limits, so it runs as 4 commands.
    ("ws3x5_int8", (72, 144, 24), 4, 3),
    # The same slice on a raw engine with max_k 32: K split in 5, partial sums out.
    ("ws4x4_a16w16_raw32", (40, 144, 20), 8, 0),
])
def test_resnet_slice_under_bandwidth(name, shape, bytes_per_cycle, latency, rtl_build_root,
                                      tmp_path, seed):
    config = CONFIGS[name]
    schedule = schedule_gemm(config, *shape)
    shapes = schedule.shapes()
    assert len(shapes) > 1
    entries = [{"shape": list(s), "label": f"cmd{i}"} for i, s in enumerate(shapes)]
    rtl = _run(config, entries, shapes, bytes_per_cycle, latency, rtl_build_root, tmp_path,
               seed)
    assert sum(rtl) > 0


@pytest.mark.parametrize("bytes_per_cycle", [4, 16])
def test_digits_cnn_layers_under_bandwidth(bytes_per_cycle, shared_path, rtl_build_root,
                                           tmp_path, seed):
    # Every engine layer of the model, as nets.lower splits it for a raw 4x4 engine (K in
    # blocks of 32 taps), with the operands of a real image; the host's sum of the partial
    # sums is nets.lower's, checked against TFLite in tests/test_nets_lower.py.
    config = CONFIGS["ws4x4_a16w16_raw32"]
    graph = load_tflite(shared_path("models/digits_cnn.tflite"))
    with np.load(shared_path("models/digits_cnn.npz")) as d:
        x = d["x_test"][:1]
    _, values = graph.run(x, keep_all=True)
    entries, shapes = [], []
    for op_index, plan in plan_network(graph, config).items():
        layer_input = values[graph.ops[op_index].inputs[0]]
        entries += plan.job_entries(layer_input, label=f"L{op_index} ")
        shapes += plan.command_shapes()
        engine_layer_output(plan, layer_input)   # the host's side runs too
    assert max(k for _, k, _ in shapes) <= config.max_k < 288   # layer 2 has K = 288
    _run(config, entries, shapes, bytes_per_cycle, 2, rtl_build_root, tmp_path, seed)
