"""Drive a ``GemmEngine`` in Amaranth's simulator, cycle by cycle, from seeded patterns.

Each cycle, every input stream is a :class:`~tests.support.streams.BeatSource` (a beat is
presented when its valid pattern allows and held until taken) and the result stream a
:class:`~tests.support.streams.BeatSink` (ready from its pattern, stream rules checked):
the same handshake as the cocotb testbench's. The harness records the cycle of every
transfer, so cycle counts can be compared with the cycle model.
"""

import numpy as np
from amaranth.sim import Simulator

import golden
from hw.beats import Gemm, StreamCodec
from hw.engine import GemmEngine

from . import gemm_jobs
from .gemm_jobs import expected_output
from .streams import BeatSink, BeatSource, StreamPatterns

__all__ = ["drive_engine", "expected_output", "random_gemm", "run_engine", "StreamPatterns"]


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


def drive_engine(dut, queues, patterns, max_cycles, finished, sample=None):
    """Run ``dut`` (a ``GemmEngine``) on ``queues`` of input beats under ``patterns``.

    Parameters
    ----------
    queues : dict of str to list of int
        Beats of each input stream, in order.
    patterns : StreamPatterns
    max_cycles : int
        The run fails (``AssertionError``) if ``finished`` is not true by then.
    finished : callable ``(t, results, sources) -> bool``
        Asked after every cycle ``t``; the run ends when it returns True.
    sample : callable ``(ctx, t)``, optional
        Called in every cycle once the inputs are driven (to record status outputs).

    Returns
    -------
    results : list of (int, int)
        ``(payload, cycle)`` of every result transfer.
    sources : dict of str to BeatSource
        Each input's source (``transfers``: the cycle of every beat taken).
    """
    sources = {name: BeatSource(name, lambda t, name=name: patterns.valid_at(name, t), beats)
               for name, beats in queues.items()}
    results = []
    sink = BeatSink(lambda payload, t: results.append((payload, t)))
    ports = {name: getattr(dut, name) for name in queues}

    async def bench(ctx):
        for t in range(max_cycles):
            for name, port in ports.items():
                beat = sources[name].present(t)
                if beat is not None:
                    ctx.set(port.payload.as_value(), beat)
                ctx.set(port.valid, beat is not None)
            ready = patterns.ready_at(t)
            ctx.set(dut.res.ready, ready)
            if sample is not None:
                sample(ctx, t)
            taken = [name for name, port in ports.items()
                     if sources[name].holding is not None and ctx.get(port.ready)]
            sink.observe(t, ready, ctx.get(dut.res.valid), ctx.get(dut.res.payload.as_value()))
            await ctx.tick()
            for name in taken:
                sources[name].taken(t)
            if finished(t, results, sources):
                return
        raise AssertionError(f"timeout after {max_cycles} cycles: {len(results)} result "
                             f"beats, inputs taken "
                             f"{ {n: len(s.transfers) for n, s in sources.items()} }")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not sink.errors, "result stream rule broken: " + "; ".join(sink.errors[:5])
    return results, sources


def run_engine(config, gemms, patterns, max_cycles=None, padding_rng=None):
    """Run ``gemms`` back to back; return ``(outputs, records)``.

    ``records[i]`` holds the cycle of GEMM i's command transfer (``first``), of its last
    result (``last``) and ``cycles = last - first + 1``. With ``padding_rng``, operand
    elements past K are random (the engine must ignore them). ``max_cycles`` defaults to
    the patterns' length.
    """
    codec = StreamCodec(config, padding_rng=padding_rng)
    queues = {"cmd": [], "act": [], "wgt": []}
    if config.has_params:
        queues["par"] = []
    for g in gemms:
        queues["cmd"].append(codec.command(g))
        queues["act"].extend(codec.activations(g))
        queues["wgt"].extend(codec.weights(g))
        if config.has_params:
            queues["par"].extend(codec.params(g))
    expect_beats = [len(codec.result_order(g.shape[0], g.shape[2])) for g in gemms]
    results, sources = drive_engine(
        GemmEngine(config), queues, patterns, max_cycles or patterns.length,
        lambda t, results, sources: len(results) == sum(expect_beats))
    outputs, records, start = [], [], 0
    for i, g in enumerate(gemms):
        beats = [payload for payload, _ in results[start:start + expect_beats[i]]]
        last = results[start + expect_beats[i] - 1][1]
        start += expect_beats[i]
        outputs.append(codec.results(beats, g.shape[0], g.shape[2]))
        first = sources["cmd"].transfers[i]
        records.append({"first": first, "last": last, "cycles": last - first + 1})
    return outputs, records
