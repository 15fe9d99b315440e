"""The pipelined ``Requantizer`` in Amaranth's simulator against the golden fixed-point model.

Every vector is checked against ``golden`` (bias wrapped at ``acc_bits``, TFLite's
``MultiplyByQuantizedMultiplier``, int32 zero-point addition, clamp); the named edges are
also checked against values worked out by hand. Inputs arrive with seeded valid gaps
(garbage on the gap cycles), and every output must appear exactly ``REQUANT_LATENCY``
cycles after its input, with ``out_valid`` high then and only then.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

import golden
from hw.config import ArrayConfig
from hw.requant import REQUANT_LATENCY, Requantizer

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def out_range(config):
    return golden.qrange(config.out_bits, config.out_signed)


def reference(config, acc, bias, m0, shift, zp, lo, hi):
    """Golden requantization of ``acc`` (any shape), bias added in the accumulator's width."""
    x = golden.wrap(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64),
                    config.acc_bits)
    y = golden.multiply_by_quantized_multiplier(x, m0, shift).astype(np.int64)
    return np.clip(golden.wrap(y + zp, 32), lo, hi)


def simulate(config, valid, acc, bias, m0, shift, zp, lo, hi):
    """Drive one vector per cycle (``valid[t]`` says which are real); sample every cycle.

    Returns ``(out_valid, out)``: per cycle, the output valid and the ``cols`` outputs, read
    before the clock edge that ends the cycle (an input set in cycle ``t`` is registered at
    the end of cycle ``t``).
    """
    dut = Requantizer(config)
    cols = config.cols
    cycles = len(valid) + REQUANT_LATENCY + 2
    seen_valid, seen_out = [], []

    async def bench(ctx):
        ctx.set(dut.out_zero_point, zp)
        ctx.set(dut.act_min, lo)
        ctx.set(dut.act_max, hi)
        for t in range(cycles):
            if t < len(valid):
                ctx.set(dut.valid, bool(valid[t]))
                ctx.set(dut.acc, [int(v) for v in acc[t]])
                ctx.set(dut.params, [{"bias": int(bias[t][c]), "m0": int(m0[t][c]),
                                      "shift": int(shift[t][c])} for c in range(cols)])
            else:
                ctx.set(dut.valid, 0)
            seen_valid.append(ctx.get(dut.out_valid))
            out = ctx.get(dut.out)
            seen_out.append([out[c] for c in range(cols)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(seen_valid, dtype=bool), np.array(seen_out, dtype=np.int64)


def check_requant(config, acc, bias, m0, shift, zp, lo, hi, rng=None, gap_prob=0.3):
    """Requantize the rows of ``acc`` (n x cols) in hardware; compare with golden.

    With ``rng``, real vectors are interleaved with gap cycles carrying random garbage.
    Returns the hardware's outputs of the real vectors, in order (n x cols).
    """
    acc, bias, m0, shift = (np.asarray(x, dtype=np.int64).reshape(-1, config.cols)
                            for x in (acc, bias, m0, shift))
    n = acc.shape[0]
    if rng is None:
        valid = np.ones(n, dtype=bool)
    else:
        valid = np.ones(n + int(rng.binomial(3 * n, gap_prob)), dtype=bool)
        valid[rng.choice(np.arange(1, len(valid)), size=len(valid) - n, replace=False)] = False
        valid[0] = True
    cycles = len(valid)
    drive = {}
    for name, real, (lo_v, hi_v) in [
            ("acc", acc, (-(1 << (config.acc_bits - 1)), (1 << (config.acc_bits - 1)) - 1)),
            ("bias", bias, (-(1 << (config.acc_bits - 1)), (1 << (config.acc_bits - 1)) - 1)),
            ("m0", m0, (INT32_MIN, INT32_MAX)), ("shift", shift, (-31, 30))]:
        gen = rng or np.random.default_rng(0)
        full = gen.integers(lo_v, hi_v + 1, size=(cycles, config.cols))
        full[valid] = real
        drive[name] = full
    out_valid, out = simulate(config, valid, drive["acc"], drive["bias"], drive["m0"],
                              drive["shift"], zp, lo, hi)
    delayed = np.concatenate([np.zeros(REQUANT_LATENCY, dtype=bool), valid,
                              np.zeros(len(out_valid) - REQUANT_LATENCY - cycles, dtype=bool)])
    assert out_valid.tolist() == delayed.tolist(), "out_valid is not valid delayed by the latency"
    got = out[delayed]
    expected = reference(config, acc, bias, m0, shift, zp, lo, hi)
    bad = np.argwhere(got != expected)
    if bad.size:
        i, c = bad[0]
        raise AssertionError(
            f"vector {i} column {c}: acc={acc[i, c]} bias={bias[i, c]} m0={m0[i, c]} "
            f"shift={shift[i, c]} zp={zp} clamp=[{lo}, {hi}]: got {got[i, c]}, "
            f"golden {expected[i, c]} ({len(bad)} mismatches)")
    return got


def random_vectors(config, rng, n):
    """Accumulators, biases and multipliers spread over their whole ranges and the edges."""
    cols = config.cols
    half = 1 << (config.acc_bits - 1)
    acc = rng.integers(-half, half, size=(n, cols))
    small = rng.random((n, cols)) < 0.4
    acc[small] = rng.integers(-5000, 5001, size=small.sum())
    edge = rng.random((n, cols)) < 0.1
    acc[edge] = rng.choice([-half, -half + 1, -1, 0, 1, half - 1], size=edge.sum())
    bias = rng.integers(-half, half, size=(n, cols))
    bias[rng.random((n, cols)) < 0.5] = 0
    real = np.exp(rng.uniform(np.log(1e-7), np.log(8.0), size=(n, cols)))
    m0, shift = golden.quantize_multiplier(real)
    m0, shift = m0.astype(np.int64), np.clip(shift.astype(np.int64), -31, 30)
    wild = rng.random((n, cols)) < 0.25
    m0[wild] = rng.integers(INT32_MIN, INT32_MAX + 1, size=wild.sum())
    m0[rng.random((n, cols)) < 0.03] = INT32_MIN
    wild = rng.random((n, cols)) < 0.25
    shift[wild] = rng.integers(-31, 31, size=wild.sum())
    return acc, bias, m0, shift


# --- random vectors against golden ----------------------------------------------------------

CONFIGS = {
    "out8": ArrayConfig(cols=3),
    "out4": ArrayConfig(cols=2, out_bits=4),
    "out16": ArrayConfig(cols=2, out_bits=16),
    "out8_unsigned": ArrayConfig(cols=2, out_signed=False),
    "out4_unsigned": ArrayConfig(cols=1, out_bits=4, out_signed=False),
    "out16_unsigned": ArrayConfig(cols=1, out_bits=16, out_signed=False),
    "acc20": ArrayConfig(cols=2, acc_bits=20),
    "acc17_out2": ArrayConfig(cols=1, acc_bits=17, out_bits=2),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_random_vectors(name, rng):
    config = CONFIGS[name]
    o_lo, o_hi = out_range(config)
    for trial in range(3):
        zp = int(rng.integers(o_lo, o_hi + 1))
        lo, hi = (o_lo, o_hi) if trial == 0 else sorted(int(x) for x in
                                                        rng.integers(o_lo, o_hi + 1, size=2))
        check_requant(config, *random_vectors(config, rng, 150), zp, lo, hi, rng=rng)


def test_columns_are_independent(rng):
    config = ArrayConfig(cols=4, out_bits=16)
    # The same accumulator in every column, different parameters per column.
    acc = np.repeat(rng.integers(-(1 << 20), 1 << 20, size=(40, 1)), 4, axis=1)
    bias = np.tile([0, 1000, -1000, 7], (40, 1))
    m0 = np.tile([1 << 30, 1 << 30, 3 << 29, INT32_MAX], (40, 1))
    shift = np.tile([-4, -4, -10, 0], (40, 1))
    got = check_requant(config, acc, bias, m0, shift, 0, -32768, 32767, rng=rng)
    assert (got[:, 0] != got[:, 1]).any() and (got[:, 0] != got[:, 2]).any()


# --- exact ties of both rounding steps, random, for every shift ------------------------------

def exact_requant(x, m0, shift):
    """``MultiplyByQuantizedMultiplier`` from its rounding rules, in exact rationals.

    ``(x << left) * m0 / 2**31`` rounded to nearest, ties up (INT32_MIN squared saturates);
    then divided by ``2**right``, rounded to nearest, ties away from zero.
    Returns ``(result, high, tie_high, tie_divide)``: the tie flags say which step had an
    exact .5 to round.
    """
    left, right = max(shift, 0), max(-shift, 0)
    shifted = golden.wrap(x << left, 32).item()
    product = Fraction(shifted * m0, 1 << 31)
    if shifted == m0 == INT32_MIN:
        high = INT32_MAX
    else:
        high = math.floor(product + Fraction(1, 2))
    quotient = Fraction(high, 1 << right)
    result = math.floor(abs(quotient) + Fraction(1, 2)) * (1 if quotient >= 0 else -1)
    return result, high, product.denominator == 2, quotient.denominator == 2


def random_odd(rng, limit):
    """A uniformly random odd integer in ``-limit..limit`` (``limit >= 1``), either sign."""
    return int(rng.integers(0, (limit + 1) // 2)) * 2 + 1 if rng.random() < 0.5 else -(
        int(rng.integers(0, (limit + 1) // 2)) * 2 + 1)


def high_mul_tie(rng, shift, negative, out_limit):
    """``(x, m0)`` with ``(x << shift) * m0`` an odd multiple of ``2**30`` (a tie of the high
    multiply) of the given sign, and a result within ``out_limit``."""
    left, right = max(shift, 0), max(-shift, 0)
    # m0 = odd * 2**s and x << left = odd' * 2**(30 - s): the product is odd'' * 2**30, and
    # |high| = |odd * odd'| / 2 rounded must keep the result within out_limit.
    s = int(rng.integers(0, 31 - left))
    m_odd = random_odd(rng, min((1 << (31 - s)) - 1, out_limit << (right + 1)))
    x_limit = min(((1 << 31) - 1) >> (30 - s), (out_limit << (right + 1)) // abs(m_odd))
    x = abs(random_odd(rng, x_limit)) << (30 - s - left)
    return (-x if (m_odd < 0) != negative else x), m_odd << s


def divide_tie(rng, right, negative, smallest, out_limit):
    """``(x, m0)`` with a high multiply of ``+-(2k + 1) * 2**(right - 1)``: a tie of the
    rounding divide (``k = 0`` if ``smallest``), of the given sign; ``m0`` normalized."""
    k_limit = min(out_limit - 1, ((1 << 31) - 1) // (1 << (right - 1)) // 2 - 1)
    k = 0 if smallest else int(rng.integers(0, max(k_limit, 0) + 1))
    high = (2 * k + 1) << (right - 1)
    high = -high if negative else high
    while True:
        m0 = int(rng.integers(1 << 30, 1 << 31)) * (1 if rng.random() < 0.5 else -1)
        # x * m0 / 2**31 rounds to high for some x within a step of high * 2**31 / m0.
        guess = (high << 31) // m0
        for x in range(guess - 2, guess + 3):
            if INT32_MIN <= x <= INT32_MAX and exact_requant(x, m0, 0)[1] == high:
                return x, m0


def tie_vectors(rng, repeats=3):
    """Accumulators, biases, m0 and shifts that hit exact ties, with their exact results.

    For every shift in -31..30, ``repeats`` ties of the high multiply of each sign; for every
    right shift 1..31, ``repeats`` ties of the rounding divide of each sign, the first one
    the smallest (``+-2**(right - 1)``, e.g. -1 halved). Biases are random or 0 and the
    accumulator is what makes ``acc + bias`` the intended value.
    """
    out_limit = (1 << 15) - 1
    cases = []
    for shift in range(-31, 31):
        for _ in range(repeats):
            cases += [high_mul_tie(rng, shift, negative, out_limit) + (shift,)
                      for negative in (False, True)]
        if shift < 0:
            for negative in (False, True):
                cases += [divide_tie(rng, -shift, negative, r == 0, out_limit) + (shift,)
                          for r in range(repeats)]
    order = rng.permutation(len(cases))
    x, m0, shift = (np.array([cases[i][j] for i in order], dtype=np.int64) for j in range(3))
    bias = np.where(rng.random(len(x)) < 0.5, 0, rng.integers(INT32_MIN, INT32_MAX + 1, len(x)))
    acc = golden.wrap(x - bias, 32)
    return acc, bias, m0, shift, x


def test_random_ties_of_both_rounding_steps_every_shift(rng):
    config = ArrayConfig(cols=3, out_bits=16)
    acc, bias, m0, shift, x = tie_vectors(rng)
    exact = [exact_requant(int(v), int(m), int(s)) for v, m, s in zip(x, m0, shift, strict=True)]
    # The vectors hit what they are built to: for every shift, ties of the high multiply of
    # both signs of the product; for every right shift, ties of the divide of both signs
    # (the smallest among them, -1 halved included); every result unclamped.
    high_ties = {(int(s), (int(v) << max(int(s), 0)) * int(m) > 0)
                 for v, m, s, e in zip(x, m0, shift, exact, strict=True) if e[2]}
    assert high_ties == {(s, positive) for s in range(-31, 31) for positive in (False, True)}
    divide_ties = {(int(s), e[1] > 0) for s, e in zip(shift, exact, strict=True) if e[3]}
    assert divide_ties >= {(s, positive) for s in range(-31, 0) for positive in (False, True)}
    smallest = {(int(s), e[1]) for s, e in zip(shift, exact, strict=True) if e[3]}
    assert all((s, sign << (-s - 1)) in smallest for s in range(-31, 0) for sign in (1, -1))
    expected = np.array([e[0] for e in exact])
    assert np.abs(expected).max() < 1 << 15
    # Golden against the exact rules, then the hardware against golden (check_requant).
    got_golden = golden.multiply_by_quantized_multiplier(x, m0, shift)
    assert got_golden.tolist() == expected.tolist()
    cols = config.cols
    pad = -len(acc) % cols
    padded = [np.concatenate([v, v[:pad]]) for v in (acc, bias, m0, shift)]
    got = check_requant(config, *padded, 0, -(1 << 15), (1 << 15) - 1, rng=rng)
    assert got.reshape(-1)[:len(acc)].tolist() == expected.tolist()


# --- latency --------------------------------------------------------------------------------

def test_latency_of_a_lone_vector():
    config = ArrayConfig(cols=1, out_bits=16)
    valid = [True] + [False] * 12
    acc = [[1234]] + [[-999]] * 12
    params = [[0]] * 13, [[1 << 30]] * 13, [[0]] * 13
    out_valid, out = simulate(config, valid, acc, *params, 0, -32768, 32767)
    assert np.flatnonzero(out_valid).tolist() == [REQUANT_LATENCY]
    # 1234 * 2**30 / 2**31 = 617 exactly; the garbage vectors give round(-999 / 2) = -499.
    assert out[REQUANT_LATENCY, 0] == 617
    assert out[REQUANT_LATENCY + 1, 0] == -499
    assert REQUANT_LATENCY == 5  # the five stages of the docstring, one register each


def test_back_to_back_vectors():
    config = ArrayConfig(cols=1, out_bits=16)
    acc = np.arange(-20, 20).reshape(-1, 1) * 6
    got = check_requant(config, acc, 0, 1 << 30, 0, 0, -32768, 32767)
    assert got[:, 0].tolist() == (np.arange(-20, 20) * 3).tolist()


# --- named edges (hand-derived values, and golden) -------------------------------------------

def check_edges(config, cases, zp=0, lo=None, hi=None):
    """``cases``: ``(acc, bias, m0, shift, expected)``, one per cycle, column 0."""
    o_lo, o_hi = out_range(config)
    lo = o_lo if lo is None else lo
    hi = o_hi if hi is None else hi
    acc, bias, m0, shift, expected = (np.array(x, dtype=np.int64) for x in zip(*cases, strict=True))
    got = check_requant(config, acc, bias, m0, shift, zp, lo, hi)
    assert got[:, 0].tolist() == expected.tolist()


WIDE = ArrayConfig(cols=1, out_bits=16)
BYTE = ArrayConfig(cols=1)


def test_saturation_int32_min_squared():
    check_edges(BYTE, [
        # SRDHM(INT32_MIN, INT32_MIN) saturates to INT32_MAX, clamped to 127 (not -128).
        (INT32_MIN, 0, INT32_MIN, 0, 127),
        # Divided by 2**31: INT32_MAX / 2**31 rounds to 1; unsaturated (-2**31) would give -1.
        (INT32_MIN, 0, INT32_MIN, -31, 1),
        # One off the corner does not saturate: (-2**31 + 1) * -2**31 / 2**31 = 2**31 - 1.
        (INT32_MIN + 1, 0, INT32_MIN, -31, 1),
        (INT32_MIN, 0, INT32_MIN + 1, -30, 2),
    ])


def test_saturation_reaches_a_wide_output():
    # INT32_MAX >> 16 = 32767.99..., rounds to 32768: clamped to 32767 at 16 bits.
    check_edges(WIDE, [(INT32_MIN, 0, INT32_MIN, -16, 32767),
                       (INT32_MIN, 0, INT32_MIN, -17, 16384)])


def test_high_mul_ties_round_toward_plus_infinity():
    # x * 2**30 / 2**31 = x / 2: odd x is an exact tie.
    check_edges(WIDE, [
        (1, 0, 1 << 30, 0, 1), (-1, 0, 1 << 30, 0, 0),
        (3, 0, 1 << 30, 0, 2), (-3, 0, 1 << 30, 0, -1),
        (5, 0, 1 << 30, 0, 3), (-5, 0, 1 << 30, 0, -2),
        # Negative multiplier: (3 * -2**30) / 2**31 = -1.5 -> -1.
        (3, 0, -(1 << 30), 0, -1), (-3, 0, -(1 << 30), 0, 2),
        # Not ties: x * 3 * 2**28 / 2**31 = 3x / 8.
        (3, 0, 3 << 28, 0, 1), (-3, 0, 3 << 28, 0, -1), (5, 0, 3 << 28, 0, 2),
        (-5, 0, 3 << 28, 0, -2),
    ])


def test_rounding_right_shift_ties_away_from_zero():
    # m0 = 2**30 halves an even x exactly, then the right shift by e has a tie at y = k + 1/2.
    check_edges(WIDE, [
        (12, 0, 1 << 30, -2, 2), (-12, 0, 1 << 30, -2, -2),    # y = +-6: +-1.5
        (4, 0, 1 << 30, -2, 1), (-4, 0, 1 << 30, -2, -1),      # y = +-2: +-0.5
        (20, 0, 1 << 30, -2, 3), (-20, 0, 1 << 30, -2, -3),    # y = +-10: +-2.5 (not to even)
        (10, 0, 1 << 30, -2, 1), (-10, 0, 1 << 30, -2, -1),    # y = +-5: +-1.25
        (14, 0, 1 << 30, -2, 2), (-14, 0, 1 << 30, -2, -2),    # y = +-7: +-1.75
        (2, 0, 1 << 30, -1, 1), (-2, 0, 1 << 30, -1, -1),      # y = +-1, e = 1: +-0.5
        (3 << 20, 0, 1 << 30, -20, 2), (-(3 << 20), 0, 1 << 30, -20, -2),
    ])


def test_shift_30_wraps_the_left_shift():
    check_edges(WIDE, [
        # 1 << 30 = 2**30; times 2**7 / 2**31 = 64.
        (1, 0, 1 << 7, 30, 64),
        # 2 << 30 = 2**31 wraps to -2**31: -128 (unwrapped it would be +128).
        (2, 0, 1 << 7, 30, -128),
        # 3 << 30 wraps to -2**30: -64 (unwrapped: 192).
        (3, 0, 1 << 7, 30, -64),
        (-1, 0, 1 << 7, 30, -64),
        # 4 << 30 wraps to 0.
        (4, 0, 1 << 7, 30, 0),
        # A shift of 1: 2**30 << 1 wraps to -2**31, times 2**30 / 2**31 = -2**30 -> clamp.
        (1 << 30, 0, 1 << 30, 1, -32768),
        (5, 0, 1 << 30, 1, 5),
    ])


def test_shift_minus_31():
    check_edges(WIDE, [
        # y = round((2**31 - 1) / 2) = 2**30 (a tie up); 2**30 / 2**31 = 0.5 -> 1.
        (INT32_MAX, 0, 1 << 30, -31, 1),
        # y = 2**30 - 1: below one half -> 0.
        (INT32_MAX - 1, 0, 1 << 30, -31, 0),
        # y = -2**30: -0.5 -> -1 (away from zero).
        (INT32_MIN, 0, 1 << 30, -31, -1),
        # y = -2**30 + 1 -> 0.
        (INT32_MIN + 2, 0, 1 << 30, -31, 0),
        # SRDHM(INT32_MAX, INT32_MAX) = 2**31 - 2 -> 1.
        (INT32_MAX, 0, INT32_MAX, -31, 1),
    ])


def test_bias_wraps_at_acc_bits():
    config = ArrayConfig(cols=1, acc_bits=20, out_bits=16)
    top, bottom = (1 << 19) - 1, -(1 << 19)
    check_edges(config, [
        # 2**19 - 1 + 1 wraps to -2**19; halved, then / 2**14: -16 (unwrapped: +16).
        (top, 1, 1 << 30, -14, -16),
        # -2**19 - 1 wraps to 2**19 - 1; halved is 2**18 - 0.5 -> 2**18; / 2**14 = 16.
        (bottom, -1, 1 << 30, -14, 16),
        (top, top, 1 << 30, 0, -1),               # 2**20 - 2 wraps to -2; halved
        (bottom, bottom, 1 << 30, 0, 0),          # -2**20 wraps to 0
        (1000, -1000, 1 << 30, 0, 0),
        (-3, 10, 1 << 30, 0, 4),                  # 7 / 2 = 3.5 -> 4
    ])


def test_bias_is_sign_extended_from_acc_bits():
    # A negative 20-bit sum must reach the 32-bit multiplier as a negative number.
    config = ArrayConfig(cols=1, acc_bits=20, out_bits=16)
    check_edges(config, [(-(1 << 19), 0, 1 << 30, -10, -256), (-6, 0, 1 << 30, 0, -3)])


def test_clamp_at_both_bounds():
    # y = x / 2 exactly (even x), plus the zero point 3, clamped to [-5, 7].
    cases = [(2 * v, 0, 1 << 30, 0, min(max(v + 3, -5), 7)) for v in range(-12, 8)]
    check_edges(BYTE, cases, zp=3, lo=-5, hi=7)
    assert {c[-1] for c in cases} >= {-5, 7}


def test_clamp_of_wide_values():
    # Values far outside the output range clamp to the bounds.
    check_edges(BYTE, [
        (INT32_MAX, 0, INT32_MAX, 0, 127), (INT32_MIN, 0, INT32_MAX, 0, -128),
        (1 << 20, 0, 1 << 30, 0, 127), (-(1 << 20), 0, 1 << 30, 0, -128),
    ])
    # SRDHM(INT32_MAX, INT32_MAX) = 2**31 - 2; + 10 wraps in int32 to -2**31 + 8 -> -128.
    check_edges(BYTE, [(INT32_MAX, 0, INT32_MAX, 0, -128)], zp=10)


@pytest.mark.parametrize(("out_bits", "lo", "hi"), [(4, -8, 7), (16, -32768, 32767)])
def test_signed_output_widths(out_bits, lo, hi):
    config = ArrayConfig(cols=1, out_bits=out_bits)
    cases = [(2 * v, 0, 1 << 30, 0, min(max(v, lo), hi))
             for v in (lo - 1, lo, lo + 1, -1, 0, 1, hi - 1, hi, hi + 1, 3 * hi)]
    check_edges(config, cases)


@pytest.mark.parametrize(("out_bits", "hi"), [(4, 15), (8, 255), (16, 65535)])
def test_unsigned_outputs(out_bits, hi):
    config = ArrayConfig(cols=1, out_bits=out_bits, out_signed=False)
    zp = hi // 2 + 1
    cases = [(2 * v, 0, 1 << 30, 0, min(max(v + zp, 0), hi))
             for v in (-zp - 5, -zp, -zp + 1, -1, 0, 1, hi - zp, hi - zp + 1, hi)]
    check_edges(config, cases, zp=zp)
    # The top half of the unsigned range must not read as negative.
    assert any(c[-1] > hi // 2 for c in cases)
    check_edges(config, [(2 * (hi - 3), 0, 1 << 30, 0, hi - 3)], zp=0, lo=hi - 10, hi=hi)
