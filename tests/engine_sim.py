"""Drive a ``GemmEngine`` in Amaranth's simulator, cycle by cycle, from seeded patterns.

Each cycle, an input stream that is not holding a beat presents its next beat if its
valid pattern allows it this cycle; a presented beat is held until it is taken (the
stream rules). The result stream's ready follows its own pattern. The harness records
the cycle of every transfer, so cycle counts can be compared with the cycle model.
"""

import gemm_jobs
import numpy as np
from amaranth.sim import Simulator
from gemm_jobs import expected_output

import golden
from hw.beats import Gemm, StreamCodec
from hw.engine import GemmEngine

__all__ = ["expected_output", "random_gemm", "run_engine", "StreamPatterns"]


def random_gemm(config, rng, m, k, n, extremes=False, planes=(None, None)):
    """A random GEMM for ``config``; ``extremes`` pins operands and zero points to the ends.

    The low-bit modes take their operands (and, bit-serial, the ``planes``), and every mode
    its threshold parameters, from :mod:`gemm_jobs`.
    """
    if config.pe_mode != "mac":
        (a_lo, a_hi), (w_lo, w_hi) = gemm_jobs._ranges(config, planes)
        pick = gemm_jobs._extreme if extremes else gemm_jobs._uniform
        return gemm_jobs._gemm(config, rng, pick(rng, (a_lo, a_hi), (m, k)),
                               pick(rng, (w_lo, w_hi), (k, n)), 0, planes)

    def draw(bits, signed, shape):
        lo, hi = golden.qrange(bits, signed)
        if extremes:
            return rng.choice(np.array([lo, hi]), size=shape)
        return rng.integers(lo, hi + 1, size=shape)
    a = draw(config.a_bits, config.a_signed, (m, k))
    w = draw(config.w_bits, config.w_signed, (k, n))
    a_lo, a_hi = golden.qrange(config.a_bits, config.a_signed)
    za = int(rng.choice([a_lo, a_hi])) if extremes else int(rng.integers(a_lo, a_hi + 1))
    if not config.requant:
        return gemm_jobs._gemm(config, rng, a, w, za)     # raw, or threshold parameters
    acc_lo, acc_hi = -(1 << (config.acc_bits - 1)), (1 << (config.acc_bits - 1)) - 1
    bias = rng.integers(max(acc_lo, -(1 << 20)), min(acc_hi, 1 << 20) + 1, size=n)
    real = np.exp(rng.uniform(np.log(1e-6), np.log(4.0), size=n))
    m0, shift = golden.quantize_multiplier(real)
    o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
    zo = int(rng.integers(o_lo, o_hi + 1))
    lo, hi = sorted(int(x) for x in rng.integers(o_lo, o_hi + 1, size=2))
    if rng.random() < 0.5:
        lo, hi = o_lo, o_hi
    return Gemm(a, w, za, bias, m0, np.clip(shift, -31, 30), zo, lo, hi)


class StreamPatterns:
    """Seeded per-cycle patterns: ``valid[name][t]`` for inputs, ``ready[t]`` for results."""

    def __init__(self, rng, cycles, stall_prob=0.0, names=("cmd", "act", "wgt", "par")):
        self.valid = {name: rng.random(cycles) >= stall_prob for name in names}
        self.ready = rng.random(cycles) >= stall_prob
        self.cycles = cycles

    @classmethod
    def always(cls, cycles, names=("cmd", "act", "wgt", "par")):
        p = cls.__new__(cls)
        p.valid = {name: np.ones(cycles, dtype=bool) for name in names}
        p.ready = np.ones(cycles, dtype=bool)
        p.cycles = cycles
        return p


def run_engine(config, gemms, patterns, max_cycles=None, padding_rng=None):
    """Run ``gemms`` back to back; return ``(outputs, records)``.

    ``records[i]`` holds the cycle of GEMM i's command transfer (``first``), of its last
    result (``last``) and ``cycles = last - first + 1``. With ``padding_rng``, operand
    elements past K are random (the engine must ignore them).
    """
    dut = GemmEngine(config)
    codec = StreamCodec(config, padding_rng=padding_rng)
    queues = {"cmd": [], "act": [], "wgt": [], "par": []}
    for g in gemms:
        queues["cmd"].append(codec.command(g))
        queues["act"].extend(codec.activations(g))
        queues["wgt"].extend(codec.weights(g))
        if config.has_params:
            queues["par"].extend(codec.params(g))
    if not config.has_params:
        del queues["par"]
    expect_beats = [len(codec.result_order(g.shape[0], g.shape[2])) for g in gemms]
    ports = {name: getattr(dut, name) for name in queues}
    limit = max_cycles or patterns.cycles
    received = []
    transfer_cycles = {"cmd": [], "res": []}

    async def bench(ctx):
        pos = dict.fromkeys(queues, 0)
        holding = dict.fromkeys(queues, False)
        for t in range(limit):
            for name, port in ports.items():
                if not holding[name] and pos[name] < len(queues[name]) and patterns.valid[name][t]:
                    holding[name] = True
                    ctx.set(port.payload.as_value(), queues[name][pos[name]])
                ctx.set(port.valid, holding[name])
            ctx.set(dut.res.ready, bool(patterns.ready[t]))
            taken = [name for name, port in ports.items()
                     if holding[name] and ctx.get(port.ready)]
            if ctx.get(dut.res.valid) and patterns.ready[t]:
                received.append(ctx.get(dut.res.payload.as_value()))
                transfer_cycles["res"].append(t)
            if "cmd" in taken:
                transfer_cycles["cmd"].append(t)
            await ctx.tick()
            for name in taken:
                holding[name] = False
                pos[name] += 1
            if len(received) == sum(expect_beats):
                return
        raise AssertionError(f"timeout after {limit} cycles: {len(received)} of "
                             f"{sum(expect_beats)} result beats, inputs taken {pos}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    outputs, records, start = [], [], 0
    for i, g in enumerate(gemms):
        beats = received[start:start + expect_beats[i]]
        last = transfer_cycles["res"][start + expect_beats[i] - 1]
        start += expect_beats[i]
        outputs.append(codec.results(beats, g.shape[0], g.shape[2]))
        first = transfer_cycles["cmd"][i]
        records.append({"first": first, "last": last, "cycles": last - first + 1})
    return outputs, records
