"""The whole ``GemmEngine`` in Amaranth's simulator against the golden model, bit for bit.

GEMMs go through ``tests/support/engine_sim.py`` (seeded valid gaps on every input stream, ready
gaps on the result stream) and the outputs are compared with ``golden`` alone. Refused
commands are driven as raw command beats packed with Amaranth's own layout, between good
GEMMs in the same simulation. Arrays and GEMMs are small: the simulator is slow.
"""

import dataclasses
import itertools

import numpy as np
import pytest

from hw.beats import StreamCodec
from hw.config import ArrayConfig
from hw.engine import GemmEngine
from hw.interfaces import cmd_layout
from tests.support.engine_sim import (
    StreamPatterns,
    drive_engine,
    expected_output,
    random_gemm,
    run_engine,
)

LIMITS = {"max_m": 40, "max_k": 24, "max_n": 16}


def cfg(rows, cols, dataflow, **fields):
    return ArrayConfig(rows=rows, cols=cols, dataflow=dataflow, **{**LIMITS, **fields})


def patterns_for(rng, stall_prob, cycles=60000):
    return StreamPatterns(int(rng.integers(1 << 32)), stall_prob, cycles=cycles)


def check_engine(config, rng, shapes, stall_prob=0.0, extremes=False, gemms=None):
    """Run GEMMs of ``shapes`` back to back in one simulation; compare each with golden."""
    gemms = gemms or [random_gemm(config, rng, *shape, extremes=extremes) for shape in shapes]
    outputs, records = run_engine(config, gemms, patterns_for(rng, stall_prob))
    for i, (gemm, out) in enumerate(zip(gemms, outputs, strict=True)):
        expected = expected_output(config, gemm)
        assert out.shape == expected.shape
        bad = np.argwhere(out != expected)
        assert not bad.size, (f"GEMM {i} of shape {gemm.shape}: {len(bad)} wrong outputs, first "
                              f"at {tuple(bad[0])}: got {out[tuple(bad[0])]}, golden "
                              f"{expected[tuple(bad[0])]}")
    # GEMMs finish in order, each after its own command.
    assert all(r["first"] <= r["last"] for r in records)
    assert all(a["last"] < b["last"] for a, b in itertools.pairwise(records))
    return gemms, outputs


BOTH = pytest.mark.parametrize("dataflow", ["ws", "os"])


# --- array sizes ----------------------------------------------------------------------------

@BOTH
def test_1x1(dataflow, rng):
    check_engine(cfg(1, 1, dataflow), rng, [(1, 1, 1), (3, 4, 2), (5, 1, 3)], stall_prob=0.4)


@BOTH
def test_2x3(dataflow, rng):
    check_engine(cfg(2, 3, dataflow), rng, [(1, 1, 1), (7, 5, 8), (13, 6, 3)], stall_prob=0.3)


@BOTH
def test_3x2(dataflow, rng):
    check_engine(cfg(3, 2, dataflow), rng, [(1, 7, 1), (8, 4, 5), (2, 3, 6)], stall_prob=0.5)


@BOTH
def test_stall_free(dataflow, rng):
    check_engine(cfg(2, 3, dataflow), rng, [(7, 5, 8), (1, 1, 1), (13, 7, 4)])


@BOTH
def test_4x4_larger_gemm(dataflow, rng):
    check_engine(cfg(4, 4, dataflow), rng, [(17, 19, 9)], stall_prob=0.3)


@BOTH
def test_3x5_raw_acc20(dataflow, rng):
    check_engine(cfg(3, 5, dataflow, requant=False, acc_bits=20), rng,
                 [(8, 10, 11), (2, 1, 5)], stall_prob=0.4, extremes=True)


# --- shapes ---------------------------------------------------------------------------------

@BOTH
def test_unit_sizes(dataflow, rng):
    # M, K and N equal to 1, alone and together.
    check_engine(cfg(3, 2, dataflow), rng, [(1, 1, 1), (1, 5, 4), (6, 1, 3), (4, 3, 1)],
                 stall_prob=0.3)


@BOTH
def test_exact_multiples_and_one_off(dataflow, rng):
    # 2x3: K a multiple of rows and one off; N a multiple of cols and one off; M a multiple
    # of the block and one off (block 6 weight-stationary, 2 output-stationary).
    config = cfg(2, 3, dataflow)
    b = config.block
    check_engine(config, rng, [(b, 4, 6), (b + 1, 5, 7), (b - 1, 3, 5), (2 * b, 6, 3)],
                 stall_prob=0.3)


@BOTH
def test_many_blocks_tiles_chunks(dataflow, rng):
    # Several blocks of M, tiles of N and chunks of K at once.
    config = cfg(2, 2, dataflow)
    check_engine(config, rng, [(3 * config.block + 1, 7, 5)], stall_prob=0.4)


@BOTH
def test_at_the_limits(dataflow, rng):
    config = cfg(2, 3, dataflow, max_m=9, max_k=5, max_n=7)
    check_engine(config, rng, [(9, 5, 7), (1, 5, 7), (9, 1, 1)], stall_prob=0.3)


@BOTH
def test_single_chunk_single_tile_limits(dataflow, rng):
    # max_k == rows and max_n == cols: one K chunk, one column tile, one-word memories.
    check_engine(cfg(2, 3, dataflow, max_m=5, max_k=2, max_n=3), rng,
                 [(5, 2, 3), (1, 1, 1), (4, 1, 2)], stall_prob=0.3)
    check_engine(cfg(1, 1, dataflow, max_m=1, max_k=1, max_n=1), rng,
                 [(1, 1, 1), (1, 1, 1)], stall_prob=0.3)


@BOTH
def test_extreme_operands(dataflow, rng):
    # Operands and zero points pinned to the ends of their ranges.
    check_engine(cfg(2, 3, dataflow), rng, [(5, 7, 4), (3, 2, 5)], stall_prob=0.3,
                 extremes=True)


@BOTH
def test_back_to_back(dataflow, rng):
    shapes = [(int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
              for _ in range(6)]
    check_engine(cfg(2, 2, dataflow), rng, shapes, stall_prob=0.35)


# --- widths ---------------------------------------------------------------------------------

@BOTH
def test_a4_unsigned_w6(dataflow, rng):
    check_engine(cfg(2, 3, dataflow, a_bits=4, a_signed=False, w_bits=6), rng,
                 [(5, 7, 4), (1, 1, 2)], stall_prob=0.3)
    check_engine(cfg(3, 2, dataflow, a_bits=4, a_signed=False, w_bits=6), rng,
                 [(4, 5, 3)], extremes=True)


@BOTH
def test_unsigned_weights(dataflow, rng):
    check_engine(cfg(2, 2, dataflow, w_signed=False), rng, [(5, 5, 3)], stall_prob=0.3,
                 extremes=True)


@BOTH
def test_sixteen_bit_operands(dataflow, rng):
    check_engine(cfg(2, 2, dataflow, a_bits=16, w_bits=16, out_bits=16), rng,
                 [(3, 5, 3), (2, 2, 1)], stall_prob=0.3)
    # Raw 32-bit sums of 16-bit extremes: products fill 32 bits, sums wrap.
    # (Random extremes wrap with high probability, not always: draw until one does.)
    config = cfg(2, 2, dataflow, a_bits=16, w_bits=16, requant=False)
    gemm = next(g for g in (random_gemm(config, rng, 3, 6, 3, extremes=True)
                            for _ in range(100)) if wrapped(config, g))
    check_engine(config, rng, [], stall_prob=0.3, gemms=[gemm])


@BOTH
@pytest.mark.parametrize("out_signed", [True, False])
def test_out_bits_4(dataflow, out_signed, rng):
    check_engine(cfg(2, 3, dataflow, out_bits=4, out_signed=out_signed), rng,
                 [(5, 6, 4), (1, 1, 1)], stall_prob=0.3)


def wrapped(config, gemm):
    """Whether some exact sum (before the accumulator's wrap) leaves the accumulator range."""
    exact = (gemm.a.astype(np.int64) - gemm.a_zero_point) @ gemm.w.astype(np.int64)
    half = 1 << (config.acc_bits - 1)
    return bool(((exact < -half) | (exact >= half)).any())


@BOTH
@pytest.mark.parametrize("acc_bits", [16, 12])
def test_raw_accumulators_wrap(dataflow, acc_bits, rng):
    # 16 bits hold one a8w8 product but not the sums; 12 bits wrap single products too.
    config = cfg(2, 3, dataflow, requant=False, acc_bits=acc_bits)
    gemms, outputs = check_engine(config, rng, [(5, 9, 4), (3, 2, 2)], stall_prob=0.3,
                                  extremes=True)
    assert wrapped(config, gemms[0])
    half = 1 << (acc_bits - 1)
    assert all(((out >= -half) & (out < half)).all() for out in outputs)


@BOTH
def test_raw_accumulators_full_width(dataflow, rng):
    check_engine(cfg(3, 2, dataflow, requant=False), rng, [(4, 7, 3), (1, 1, 1)],
                 stall_prob=0.4)


# --- buffering ------------------------------------------------------------------------------

@BOTH
def test_smallest_output_fifo(dataflow, rng):
    # The credit rule must keep a minimum-depth FIFO from overflowing under backpressure.
    config = cfg(2, 3, dataflow)
    config = config.replace(out_depth=config.out_depth_min)
    check_engine(config, rng, [(7, 5, 8), (3, 1, 2)], stall_prob=0.5)
    check_engine(config, rng, [(5, 3, 4)])


@pytest.mark.parametrize("block_rows", [1, 3])
def test_ws_block_rows(block_rows, rng):
    check_engine(cfg(2, 2, "ws", block_rows=block_rows), rng, [(7, 5, 3), (1, 2, 1)],
                 stall_prob=0.3)


# --- refused commands -----------------------------------------------------------------------

def drive_jobs(config, jobs, rng, stall_prob=0.3, max_cycles=20000):
    """Run raw jobs ``(cmd_word, act, wgt, par, result_beats)`` through one engine.

    Streams follow the same rules as ``engine_sim`` (a presented beat is held until taken).
    Returns ``(results, cmd_cycles, trace)``: the result beats, the cycle of each command
    transfer, and per cycle ``(error, busy, act.ready, wgt.ready, cmd.ready)``.
    """
    dut = GemmEngine(config)
    queues = {"cmd": [], "act": [], "wgt": []}
    if config.has_params:
        queues["par"] = []
    for cmd, act, wgt, par, _ in jobs:
        queues["cmd"].append(cmd)
        queues["act"] += act
        queues["wgt"] += wgt
        if config.has_params:
            queues["par"] += par
    expected_count = sum(len(job[4]) for job in jobs)
    trace = []

    def sample(ctx, t):
        trace.append((ctx.get(dut.error), ctx.get(dut.busy), ctx.get(dut.act.ready),
                      ctx.get(dut.wgt.ready), ctx.get(dut.cmd.ready)))

    def finished(t, results, sources):
        cmds = sources["cmd"].transfers
        return (len(results) == expected_count and len(cmds) == len(queues["cmd"])
                and t > (cmds[-1] if cmds else 0) + 40)

    results, sources = drive_engine(dut, queues, patterns_for(rng, stall_prob, max_cycles),
                                    max_cycles, finished, sample)
    return [payload for payload, _ in results], sources["cmd"].transfers, trace


def good_job(config, codec, gemm):
    par = codec.params(gemm) if config.has_params else []
    return (codec.command(gemm), codec.activations(gemm), codec.weights(gemm), par,
            codec.expected_beats(expected_output(config, gemm)))


def bad_job(config, **fields):
    values = {"m": 2, "k": 3, "n": 2}
    if config.pe_mode == "mac":
        values["a_zero_point"] = 0
    elif config.pe_mode == "bitserial":
        values.update(a_planes=1, w_planes=1)
    if config.requant:
        values.update(out_zero_point=0, act_min=-128, act_max=127)
    values.update(fields)
    return (cmd_layout(config).const(values).as_bits(), [], [], [], [])


def check_refused(config, rng, bad_commands):
    """Good GEMM, then each bad command followed by a good GEMM, in one simulation.

    After a refused command: ``error`` is high from the next cycle until the next good
    command is taken (then low from the cycle after), the engine stays idle (not busy, no
    operand or result transfers), and the following GEMM is still computed correctly.
    """
    codec = StreamCodec(config)
    jobs, bad = [], []
    gemms = []
    for fields in [None, *bad_commands]:
        if fields is not None:
            jobs.append(bad_job(config, **fields))
            bad.append(True)
        gemm = random_gemm(config, rng, int(rng.integers(1, 6)), int(rng.integers(1, 6)),
                           int(rng.integers(1, 6)))
        gemms.append(gemm)
        jobs.append(good_job(config, codec, gemm))
        bad.append(False)
    results, cmd_cycles, trace = drive_jobs(config, jobs, rng)
    assert len(cmd_cycles) == len(jobs)
    # Every result beat, in order, is the golden one: the refused commands produced none.
    assert results == [beat for job in jobs for beat in job[4]]
    error = [t[0] for t in trace]
    assert not any(error[:cmd_cycles[0] + 1])
    for i, t in enumerate(cmd_cycles):
        end = cmd_cycles[i + 1] + 1 if i + 1 < len(cmd_cycles) else len(trace)
        assert set(error[t + 1:end]) == {int(bad[i])}, f"command {i} (refused: {bad[i]})"
        if bad[i]:
            # Refused: the engine stays idle and takes no operands until the next command.
            idle = trace[t + 1:end - 1]
            assert all(busy == 0 and act == 0 and wgt == 0 and cmd == 1
                       for _, busy, act, wgt, cmd in idle)
        else:
            assert trace[t + 1][1] == 1, f"command {i}: busy the cycle after it was taken"


@BOTH
def test_refused_commands(dataflow, rng):
    config = cfg(2, 3, dataflow, max_m=20, max_k=12, max_n=9)
    # The fields are wide enough (5, 4, 4 bits) to carry sizes past the limits.
    check_refused(config, rng, [
        {"m": 0}, {"k": 0}, {"n": 0},
        {"m": 21}, {"k": 13}, {"n": 10}, {"k": 15, "n": 15},
        {"act_min": 5, "act_max": 4},
        {"act_min": 127, "act_max": -128},
    ])


def test_refused_commands_back_to_back(rng):
    # Several refused commands in a row keep error high; the next good one clears it.
    config = cfg(2, 2, "ws", max_k=12)
    codec = StreamCodec(config)
    gemm = random_gemm(config, rng, 3, 4, 3)
    jobs = [bad_job(config, m=0), bad_job(config, k=13), bad_job(config, act_min=1, act_max=0),
            good_job(config, codec, gemm)]
    results, cmd_cycles, trace = drive_jobs(config, jobs, rng, stall_prob=0.0)
    error = [t[0] for t in trace]
    assert set(error[cmd_cycles[0] + 1:cmd_cycles[3] + 1]) == {1}
    assert set(error[cmd_cycles[3] + 1:]) == {0}
    assert results == jobs[3][4]


def test_refused_raw_engine(rng):
    # Without requantization there is no clamp range: only sizes are checked.
    config = cfg(3, 2, "os", requant=False, acc_bits=20, max_m=20, max_k=12, max_n=9)
    check_refused(config, rng, [{"m": 0}, {"k": 13}, {"n": 0}, {"n": 12}])


def test_good_commands_never_raise_error(rng):
    config = cfg(2, 2, "os")
    codec = StreamCodec(config)
    gemms = [random_gemm(config, rng, 3, 5, 3), random_gemm(config, rng, 1, 1, 1)]
    # act_min == act_max is a legal (constant) clamp.
    gemms.append(dataclasses.replace(random_gemm(config, rng, 2, 2, 2), act_min=3, act_max=3))
    jobs = [good_job(config, codec, g) for g in gemms]
    results, _, trace = drive_jobs(config, jobs, rng)
    assert not any(t[0] for t in trace)
    assert results == [beat for job in jobs for beat in job[4]]
    assert codec.results(results[-2:], 2, 2).tolist() == [[3, 3], [3, 3]]
