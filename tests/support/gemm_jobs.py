"""The GEMMs of the RTL regression and their answers, from the golden model alone.

A job (see :mod:`gemm_tb`) names its GEMMs either explicitly or by a generator spec. The
generator always starts with the *edge cases* of the configuration, then fills up with
random GEMMs:

* tiling in every dimension: more than two blocks of rows, at least three column tiles
  and three K chunks, no size a multiple of the array;
* ``M = 1``, ``K = 1``, ``N = 1`` and ``1 x 1 x 1``;
* all-extreme operands (every element the most negative or most positive value), and
  the largest positive and largest negative sums, with activation zero points at both
  ends of their range;
* requantizing engines: multipliers above 1 (``shift > 0``, so the left shift is used),
  clamp bounds strictly inside the output range that do clamp, output zero points at
  both ends, biases at both ends of the accumulator range;
* raw engines: a GEMM whose exact sums leave the accumulator range (they wrap), whenever
  the configuration's ``max_k`` allows one;
* threshold engines: thresholds equal to sums that occur (the compare is ``>=``), at
  both ends of the accumulator range, with and without ``invert``.

The low-bit PE modes have their own edge cases (:func:`lowbit_edge_cases`): ``xnor``
all-ones and all-zeros words on both operands, K below, at and one over the PE word and
the beat; ``bitserial`` GEMMs with 1 and with the most bit planes on each operand, their
extreme values, K not a multiple of the word.

Expected results come from :func:`golden.gemm`, :func:`golden.xnor_popcount_gemm`,
:func:`golden.requantize` and :func:`golden.threshold` (or, for the TFLite oracle, from
TFLite's own output); nothing here uses the hardware generator. :class:`hw.beats.Gemm` is
only the container the stream codec packs.
"""

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

import golden
from hw.beats import Gemm
from hw.regress import default_oracle_path

__all__ = ["Case", "default_limits", "coverage_errors", "edge_cases",
           "expected_output", "exact_sums", "generate_cases", "job_cases", "lowbit_edge_cases",
           "oracle_cases", "random_case", "wrap_reachable"]

#: Multipliers of the random requantization parameters: log-uniform in this range, so
#: that most scale down (``shift < 0``) and some scale up (``shift > 0``).
_REAL_RANGE = (2.0 ** -20, 16.0)


@dataclass(frozen=True)
class Case:
    """One GEMM of a job and its expected (M, N) result."""

    label: str
    gemm: Gemm
    expected: np.ndarray
    wrapped: bool = False

    @property
    def shape(self):
        return self.gemm.shape


# --- golden answers ------------------------------------------------------------------------

def exact_sums(config, gemm):
    """The exact (unwrapped) ``sum((a - za) * w) + bias`` in int64 (xnor: the ±1 dots)."""
    a = np.asarray(gemm.a, dtype=np.int64) - int(gemm.a_zero_point)
    acc = a @ np.asarray(gemm.w, dtype=np.int64)
    if config.requant:
        acc = acc + np.asarray(gemm.bias, dtype=np.int64)
    return acc


def golden_accumulators(config, gemm):
    """The golden accumulators of ``gemm``: sums (plus bias when requantizing), wrapped.

    ``xnor``: the ±1 dot products from :func:`golden.xnor_popcount_gemm` on the packed
    bits; the other modes: :func:`golden.gemm` of the integers.
    """
    bias = gemm.bias if config.requant else None
    if config.pe_mode == "xnor":
        k = gemm.a.shape[1]
        dots = golden.xnor_popcount_gemm(golden.pack_signs(gemm.a, axis=1),
                                         golden.pack_signs(gemm.w, axis=0), k).astype(np.int64)
        if bias is not None:
            dots = dots + np.asarray(bias, dtype=np.int64)
        return golden.wrap(dots, config.acc_bits)
    return golden.gemm(gemm.a, gemm.w, gemm.a_zero_point, 0, bias,
                       acc_bits=config.acc_bits).astype(np.int64)


def expected_output(config, gemm):
    """The golden model's (M, N) result of ``gemm`` on ``config``, as int64."""
    acc = golden_accumulators(config, gemm)
    if config.threshold:
        return golden.threshold(acc, gemm.threshold, gemm.invert).astype(np.int64)
    if not config.requant:
        return acc
    return golden.requantize(acc, gemm.m0, gemm.shift, gemm.out_zero_point, gemm.act_min,
                             gemm.act_max, out_bits=config.out_bits,
                             out_signed=config.out_signed).astype(np.int64)


def _acc_range(config):
    return -(1 << (config.acc_bits - 1)), (1 << (config.acc_bits - 1)) - 1


def _wrapped(config, gemm):
    lo, hi = _acc_range(config)
    exact = exact_sums(config, gemm)
    return bool(((exact < lo) | (exact > hi)).any())


def _case(config, label, gemm):
    return Case(label, gemm, expected_output(config, gemm), _wrapped(config, gemm))


# --- operand helpers -----------------------------------------------------------------------

def _ranges(config, planes=(None, None)):
    """Operand ranges: the element types, or a bit-serial GEMM's planes; xnor: -1, +1."""
    if config.pe_mode == "xnor":
        return (-1, 1), (-1, 1)
    a_bits = planes[0] or config.a_bits
    w_bits = planes[1] or config.w_bits
    return golden.qrange(a_bits, config.a_signed), golden.qrange(w_bits, config.w_signed)


def _largest_product(config):
    """The largest ``|(a - za) * w|`` the configuration allows."""
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)
    if config.pe_mode != "mac":
        return max(abs(a_lo), abs(a_hi)) * max(abs(w_lo), abs(w_hi))
    return (a_hi - a_lo) * max(abs(w_lo), abs(w_hi))


def wrap_reachable(config, k=None):
    """Smallest K whose extreme sums leave the accumulator range, or None if above ``k``."""
    k = config.max_k if k is None else k
    bound = 1 << (config.acc_bits - 1)
    needed = bound // _largest_product(config) + 1
    return needed if needed <= k else None


def default_limits(config):
    """Default ``(M, K, N)`` limits of random shapes: enough for three tiles in every
    dimension (one over, so no limit is a multiple of the array), within the config's
    ``max_m``, ``max_k``, ``max_n``.
    """
    return (min(config.max_m, max(3 * config.block + 1, 9)),
            min(config.max_k, max(3 * config.chunk + 1, 9)),
            min(config.max_n, max(3 * config.cols + 1, 9)))


def _not_multiple(value, unit):
    """``value``, or one less if it is a multiple of ``unit`` (> 1) and one less is > 0."""
    if unit > 1 and value % unit == 0 and value > 1:
        return value - 1
    return value


def _requant_params(config, rng, n, real=None, bias=None, out_zero_point=None, clamp=None,
                    sums=None):
    """Random bias, M0/shift, output zero point and clamp for ``n`` channels.

    Without ``real``, multipliers map the typical magnitude of ``sums`` (the GEMM's sums
    before the bias) to about half the output range, times a random power of two in
    2^-3..2^3 per channel, so that outputs spread, round and sometimes saturate; one GEMM
    in six instead draws them log-uniformly from 2^-20..16.
    """
    acc_lo, acc_hi = _acc_range(config)
    o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
    if bias is None:
        span = 1 << min(config.acc_bits - 2, 20)
        if sums is not None:
            span = min(span, max(1, int(np.abs(sums).max())))
        bias = rng.integers(max(acc_lo, -span), min(acc_hi, span) + 1, size=n)
    if real is None:
        if sums is None or rng.random() < 1 / 6:
            real = np.exp(rng.uniform(np.log(_REAL_RANGE[0]), np.log(_REAL_RANGE[1]), size=n))
        else:
            spread = np.maximum(np.percentile(np.abs(sums), 90, axis=0), 1.0)
            real = (o_hi - o_lo) / 2 / spread * 2.0 ** rng.uniform(-3, 3, size=n)
            real = np.clip(real, 2.0 ** -31, 2.0 ** 29)
    m0, shift = golden.quantize_multiplier(np.asarray(real, dtype=np.float64))
    if out_zero_point is None:
        out_zero_point = (int(rng.choice([o_lo, o_hi])) if rng.random() < 0.25
                          else int(rng.integers(o_lo, o_hi + 1)))
    if clamp is None:
        clamp = (o_lo, o_hi)
        if rng.random() < 0.5:
            clamp = tuple(sorted(int(x) for x in rng.integers(o_lo, o_hi + 1, size=2)))
    return dict(bias=np.asarray(bias, dtype=np.int64), m0=np.asarray(m0, dtype=np.int64),
                shift=np.clip(np.asarray(shift, dtype=np.int64), -31, 30),
                out_zero_point=out_zero_point, act_min=clamp[0], act_max=clamp[1])


def _small_bias(config, rng, n):
    """``n`` biases in -20..20, within the accumulator's range (3 bits hold -4..3)."""
    acc_lo, acc_hi = _acc_range(config)
    return rng.integers(max(acc_lo, -20), min(acc_hi, 20) + 1, size=n)


def _threshold_params(config, rng, sums, threshold=None, invert=None):
    """Per-channel thresholds, mostly sums that occur in the column (so that ``acc ==
    threshold`` happens), some one off them, some at the ends of the accumulator range."""
    acc_lo, acc_hi = _acc_range(config)
    acc = golden.wrap(sums, config.acc_bits)
    n = acc.shape[1]
    if threshold is None:
        rows = rng.integers(0, acc.shape[0], size=n)
        threshold = acc[rows, np.arange(n)] + rng.integers(-1, 2, size=n)
        ends = rng.random(n) < 0.15
        threshold[ends] = rng.choice(np.array([acc_lo, acc_hi]), size=int(ends.sum()))
        threshold = np.clip(threshold, acc_lo, acc_hi)
    if invert is None:
        invert = rng.integers(0, 2, size=n)
    return dict(threshold=np.asarray(threshold, dtype=np.int64),
                invert=np.asarray(invert, dtype=np.int64))


def _gemm(config, rng, a, w, a_zero_point, planes=(None, None), **stage):
    a, w = np.asarray(a, dtype=np.int64), np.asarray(w, dtype=np.int64)
    extra = {}
    if config.pe_mode == "bitserial":
        extra = dict(a_planes=planes[0] or config.a_bits, w_planes=planes[1] or config.w_bits)
    sums = (a - int(a_zero_point)) @ w
    if config.requant:
        extra.update(_requant_params(config, rng, w.shape[1], sums=sums, **stage))
    elif config.threshold:
        # The requantizer's keywords of a shared edge case (clamp, ...) do not apply here.
        extra.update(_threshold_params(config, rng, sums, threshold=stage.get("threshold"),
                                       invert=stage.get("invert")))
    return Gemm(a, w, int(a_zero_point), **extra)


def _uniform(rng, bounds, shape):
    if bounds == (-1, 1):                  # xnor: the two codes only
        return rng.choice(np.array(bounds), size=shape)
    return rng.integers(bounds[0], bounds[1] + 1, size=shape)


def _extreme(rng, bounds, shape):
    return rng.choice(np.array(bounds), size=shape)


# --- the edge cases --------------------------------------------------------------------------

def edge_cases(config, rng, limits=None):
    """The edge cases of ``config`` (see the module docstring), as ``(label, Gemm)`` pairs."""
    if config.pe_mode != "mac":
        return lowbit_edge_cases(config, rng, limits)
    lm, lk, ln = limits or default_limits(config)
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)
    a_b, w_b = (a_lo, a_hi), (w_lo, w_hi)
    R, C, B = config.rows, config.cols, config.block
    big_m, big_k, big_n = _not_multiple(lm, B), _not_multiple(lk, R), _not_multiple(ln, C)
    cases = []

    def add(label, a, w, za, **requant):
        cases.append((label, _gemm(config, rng, a, w, za, **requant)))

    o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
    full = dict(clamp=(o_lo, o_hi))
    add("tiling", _uniform(rng, a_b, (big_m, big_k)), _uniform(rng, w_b, (big_k, big_n)),
        _uniform(rng, a_b, ()))
    add("all-extreme", _extreme(rng, a_b, (min(lm, B + 1), big_k)),
        _extreme(rng, w_b, (big_k, min(ln, C + 1))), a_lo, **full)
    # (a_lo - a_hi) * w_lo is the largest product when weights are signed; with unsigned
    # weights (w_lo = 0) the largest is (a_hi - a_lo) * w_hi.
    two_m, two_n = min(lm, 2), min(ln, 2)
    if config.w_signed:
        pos = (np.full((two_m, big_k), a_lo), np.full((big_k, two_n), w_lo), a_hi)
    else:
        pos = (np.full((two_m, big_k), a_hi), np.full((big_k, two_n), w_hi), a_lo)
    add("largest-sums", *pos, out_zero_point=o_lo, **full)
    add("most-negative-sums", np.full((two_m, big_k), a_lo), np.full((big_k, two_n), w_hi),
        a_hi, out_zero_point=o_hi, **full)
    add("M=1", _uniform(rng, a_b, (1, big_k)), _uniform(rng, w_b, (big_k, big_n)), a_hi,
        out_zero_point=o_lo)
    add("K=1", _extreme(rng, a_b, (min(lm, B + 2), 1)), _extreme(rng, w_b, (1, big_n)), a_lo,
        out_zero_point=o_hi)
    add("N=1", _uniform(rng, a_b, (big_m, min(lk, R + 1))), _uniform(rng, w_b, (min(lk, R + 1), 1)),
        _uniform(rng, a_b, ()))
    add("1x1x1", np.full((1, 1), a_lo), np.full((1, 1), w_lo if config.w_signed else w_hi), a_hi)

    if config.requant:
        # Small centred operands, so that multipliers above 1 give results that neither
        # vanish nor all saturate, and the left shift's rounding shows.
        k = min(lk, R + 1)
        za = int(np.clip(0, a_lo, a_hi)) if a_lo < 0 else a_lo + 3
        a = np.clip(za + rng.integers(-3, 4, size=(min(lm, B + 1), k)), a_lo, a_hi)
        w = np.clip(rng.integers(-3, 4, size=(k, big_n)), w_lo, w_hi)
        real = np.exp(rng.uniform(np.log(1.5), np.log(64.0), size=big_n))
        add("left-shift", a, w, za, real=real, bias=_small_bias(config, rng, big_n),
            out_zero_point=(o_lo + o_hi) // 2, clamp=(o_lo, o_hi))
        cases.append(("clamp", _clamp_case(config, rng, (min(lm, B + 1), big_k, big_n))))
        acc_lo, acc_hi = _acc_range(config)
        add("bias-extremes", _uniform(rng, a_b, (min(lm, 2), min(lk, R + 1))),
            _uniform(rng, w_b, (min(lk, R + 1), min(ln, 2 * C))), _uniform(rng, a_b, ()),
            bias=np.resize([acc_lo, acc_hi], min(ln, 2 * C)))
    else:
        k = wrap_reachable(config)
        if k is not None:
            # Largest sums in column 0 and most negative in column 1: both wrap, once
            # K passes what the accumulator holds.
            k = min(config.max_k, k + R + 1)
            if config.w_signed:
                a, za, w = np.full((min(lm, 3), k), a_lo), a_hi, np.array([w_lo, w_hi])
            else:
                a, za, w = np.full((min(lm, 3), k), a_hi), a_lo, np.array([w_hi, w_hi])
            a[1:2] = a_hi if config.w_signed else a_lo   # the other sign of (a - za)
            add("wrap", a, np.tile(w[:min(ln, 2)], (k, 1)), za)
    if config.threshold:
        cases += _threshold_edges(config, rng, (lm, lk, ln))
    return cases


def _threshold_edges(config, rng, limits):
    """Thresholds equal to sums that occur, one off them, and at both ends of the range."""
    lm, lk, ln = limits
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)
    m, k = min(lm, config.block + 1), min(lk, config.chunk + 1)
    n = min(ln, max(2 * config.cols, 6))
    a, w = _uniform(rng, (a_lo, a_hi), (m, k)), _uniform(rng, (w_lo, w_hi), (k, n))
    za = int(_uniform(rng, (a_lo, a_hi), ())) if config.pe_mode == "mac" else 0
    acc = golden.wrap((a - za) @ w, config.acc_bits)
    acc_lo, acc_hi = _acc_range(config)
    cols = np.arange(n)
    # Column 0 equal to one of its sums, 1 and 2 at the ends of the range, then one
    # above, one below and equal again, cycling; invert on every other pair of columns.
    offsets = np.array([1, -1, 0])[(cols - 3) % 3]
    offsets[0] = 0
    threshold = np.clip(acc[cols % m, cols] + offsets, acc_lo, acc_hi)
    threshold[1:3] = [acc_lo, acc_hi][:max(0, min(n, 3) - 1)]
    invert = (cols // 2) % 2
    return [("threshold-edges", _gemm(config, rng, a, w, za, threshold=threshold,
                                      invert=invert))]


def lowbit_edge_cases(config, rng, limits=None):
    """Edge cases of the ``xnor`` and ``bitserial`` PE modes, as ``(label, Gemm)`` pairs.

    Both: tiling over every dimension with K not a multiple of the PE word, M = 1, K = 1,
    N = 1, 1 x 1 x 1, K one under / one over a PE word and one over a beat; then the
    output stage's cases (multipliers above 1, a clamp that bites and bias extremes;
    thresholds at and beside occurring sums; a wrap of raw accumulators when reachable).
    ``xnor``: all-ones and all-zeros words, in each operand and in both. ``bitserial``:
    1 plane and the most planes on each operand, with extreme values.
    """
    lm, lk, ln = limits or default_limits(config)
    C, B, P = config.cols, config.block, config.pack
    chunk = config.chunk
    big_m, big_n = _not_multiple(lm, B), _not_multiple(ln, C)
    big_k = _not_multiple(_not_multiple(lk, chunk), P)
    xnor = config.pe_mode == "xnor"
    cases = []

    def add(label, a, w, planes=(None, None), **stage):
        cases.append((label, _gemm(config, rng, a, w, 0, planes, **stage)))

    def draw(shape_a, shape_w, planes=(None, None), extreme=False):
        (a_lo, a_hi), (w_lo, w_hi) = _ranges(config, planes)
        pick = _extreme if extreme else _uniform
        return pick(rng, (a_lo, a_hi), shape_a), pick(rng, (w_lo, w_hi), shape_w)

    add("tiling", *draw((big_m, big_k), (big_k, big_n)))
    add("M=1", *draw((1, big_k), (big_k, big_n)))
    add("K=1", *draw((min(lm, B + 2), 1), (1, big_n)))
    add("N=1", *draw((big_m, min(lk, chunk + 1)), (min(lk, chunk + 1), 1)))
    a, w = draw((1, 1), (1, 1), extreme=True)
    add("1x1x1", a, w)
    for label, k in (("K=P-1", P - 1), ("K=P+1", P + 1), ("K=beat+1", chunk + 1)):
        if 1 <= k <= lk and k != 1:
            add(label, *draw((min(lm, B + 1), k), (k, min(ln, C + 1))))
    k, m, n = big_k, min(lm, B + 1), min(ln, C + 1)
    if xnor:
        ones_a, ones_w = np.ones((m, k), np.int64), np.ones((k, n), np.int64)
        add("all-ones", ones_a, ones_w)                       # every dot is +K
        add("all-zeros", -ones_a, -ones_w)                    # -1 x -1: +K again
        add("ones-zeros", ones_a, -ones_w)                    # every dot is -K
        add("zeros-ones", -ones_a, ones_w)
    else:
        top_a, top_w = config.a_bits, config.w_bits
        for planes in ((1, 1), (top_a, top_w), (1, top_w), (top_a, 1)):
            label = f"planes a{planes[0]} w{planes[1]}"
            add(label, *draw((m, k), (k, n), planes, extreme=True), planes=planes)
        # The largest and the most negative sums of the widest planes.
        for label, (a_value, w_value) in zip(("largest-sums", "most-negative-sums"),
                                             _extreme_products(config), strict=True):
            add(label, np.full((min(lm, 2), k), a_value), np.full((k, min(ln, 2)), w_value))
    if config.requant:
        o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
        small_k = min(lk, chunk + 1)
        a, w = draw((min(lm, B + 1), small_k), (small_k, big_n))
        real = np.exp(rng.uniform(np.log(1.5), np.log(64.0), size=big_n))
        add("left-shift", a, w, real=real, bias=_small_bias(config, rng, big_n),
            out_zero_point=(o_lo + o_hi) // 2, clamp=(o_lo, o_hi))
        cases.append(("clamp", _clamp_case(config, rng, (min(lm, B + 1), big_k, big_n))))
        acc_lo, acc_hi = _acc_range(config)
        a, w = draw((min(lm, 2), small_k), (small_k, min(ln, 2 * C)))
        add("bias-extremes", a, w, bias=np.resize([acc_lo, acc_hi], min(ln, 2 * C)))
    elif config.threshold:
        cases += _threshold_edges(config, rng, (lm, lk, ln))
    else:
        k = wrap_reachable(config)
        if k is not None:
            k = min(config.max_k, k + chunk + 1)
            # Column 0 the largest sums, column 1 the most negative (when there are any).
            (a_big, w_big), (a_neg, w_neg) = _extreme_products(config)
            a = np.full((min(lm, 3), k), a_big)
            w = np.tile(np.array([w_big, w_big if a_neg != a_big else w_neg])[:min(ln, 2)],
                        (k, 1))
            add("wrap", a, w)
    return cases


def _extreme_products(config):
    """``((a, w) of the largest product, (a, w) of the most negative)`` of the widest
    operands (no zero point: the low-bit modes)."""
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)
    pairs = [(a, w) for a in (a_lo, a_hi) for w in (w_lo, w_hi)]
    return max(pairs, key=lambda p: p[0] * p[1]), min(pairs, key=lambda p: p[0] * p[1])


def _clamp_case(config, rng, shape):
    """Clamp bounds strictly inside the output range that the unclamped outputs cross.

    The bias centres the sums, the multiplier maps the typical sum to about half the
    output range (doubled until the outputs spread), and the bounds sit at the quartiles
    of the unclamped outputs, moved inward so that some output lies beyond each (when
    the outputs take at least three values; a tiny GEMM may manage only one side).
    """
    m, k, n = shape
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)
    o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
    a, w = _uniform(rng, (a_lo, a_hi), (m, k)), _uniform(rng, (w_lo, w_hi), (k, n))
    za = int(_uniform(rng, (a_lo, a_hi), ())) if config.pe_mode == "mac" else 0
    # The bias centres every column's sums on zero, so the outputs spread around the
    # output zero point (sums of unsigned operands are otherwise all of one sign).
    acc_lo, acc_hi = _acc_range(config)
    sums = golden.gemm(a, w, za, 0, None, acc_bits=config.acc_bits).astype(np.float64)
    bias = np.clip(-np.round(np.median(sums, axis=0)), acc_lo // 2, acc_hi // 2).astype(np.int64)
    acc = golden.gemm(a, w, za, 0, bias, acc_bits=config.acc_bits).astype(np.float64)
    spread = max(1.0, float(np.percentile(np.abs(acc), 90)))
    for attempt in range(12):
        real = np.full(n, min(max((o_hi - o_lo) / 2 / spread * 2.0 ** attempt, 2.0 ** -30),
                              2.0 ** 20))
        params = _requant_params(config, rng, n, real=real, bias=bias,
                                 out_zero_point=(o_lo + o_hi + 1) // 2, clamp=(o_lo, o_hi))
        unclamped = expected_output(config, Gemm(a, w, za, **params))
        low, high = (int(x) for x in np.quantile(unclamped, [0.25, 0.75]))
        low = max(low, o_lo + 1, int(unclamped.min()) + 1)
        high = min(high, o_hi - 1, int(unclamped.max()) - 1)
        if low <= high:
            break
    else:
        low, high = o_lo + 1, max(o_lo + 1, min(o_hi - 1, int(unclamped.max()) - 1))
    params.update(act_min=low, act_max=high)
    return Gemm(a, w, za, **params)


def random_case(config, rng, limits=None):
    """A random GEMM: shapes often near multiples of the array, operands sometimes extreme."""
    lm, lk, ln = limits or default_limits(config)
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config)

    def size(limit, unit):
        if rng.random() < 0.3:
            near = [1, unit - 1, unit, unit + 1, 2 * unit + 1, limit]
            return int(np.clip(rng.choice(near), 1, limit))
        return int(rng.integers(1, limit + 1))

    if config.pe_mode != "mac":
        return _lowbit_random_case(config, rng, (lm, lk, ln), size)
    m, k, n = size(lm, config.block), size(lk, config.rows), size(ln, config.cols)
    draw = _extreme if rng.random() < 0.15 else _uniform
    a = draw(rng, (a_lo, a_hi), (m, k))
    w = draw(rng, (w_lo, w_hi), (k, n))
    za = int(rng.choice([a_lo, a_hi])) if rng.random() < 0.25 else int(rng.integers(a_lo, a_hi + 1))
    return _gemm(config, rng, a, w, za)


def _lowbit_random_case(config, rng, limits, size):
    """A random xnor or bit-serial GEMM; bit-serial planes random, often 1 or the most."""
    lm, lk, ln = limits
    m, n = size(lm, config.block), size(ln, config.cols)
    if rng.random() < 0.3:
        near = [1, config.pack - 1, config.pack + 1, config.chunk - 1, config.chunk + 1, lk]
        k = int(np.clip(rng.choice(near), 1, lk))
    else:
        k = int(rng.integers(1, lk + 1))
    planes = (None, None)
    if config.pe_mode == "bitserial":
        def pick(top):
            if rng.random() < 0.4:
                return int(rng.choice([1, top]))
            return int(rng.integers(1, top + 1))
        planes = (pick(config.a_bits), pick(config.w_bits))
    (a_lo, a_hi), (w_lo, w_hi) = _ranges(config, planes)
    draw = _extreme if rng.random() < 0.15 else _uniform
    return _gemm(config, rng, draw(rng, (a_lo, a_hi), (m, k)), draw(rng, (w_lo, w_hi), (k, n)),
                 0, planes)


def generate_cases(config, seed, count, limits=None, edges=True):
    """``count`` cases: the edge cases first (as many as fit), then random ones."""
    rng = np.random.default_rng([int(seed), 0x6E6D])
    caps = (config.max_m, config.max_k, config.max_n)
    limits = tuple(min(v, cap) for v, cap in zip(limits, caps, strict=True)) if limits else None
    cases = []
    if edges:
        cases = [_case(config, label, g) for label, g in edge_cases(config, rng, limits)]
    cases = cases[:count]
    while len(cases) < count:
        cases.append(_case(config, "random", random_case(config, rng, limits)))
    for case in cases:
        if not all(1 <= size <= cap for size, cap in zip(case.shape, caps, strict=True)):
            raise AssertionError(f"generated {case.label} GEMM {case.shape} is outside "
                                 f"1..{caps} (M, K, N)")
    return cases


def coverage_errors(config, cases, limits=None):
    """What the edge cases promise and did not deliver (an empty list when all is well).

    Checked on the golden side: the ``wrap`` case's exact sums leave the accumulator
    range; every ``left-shift`` multiplier has ``shift > 0``; the ``clamp`` case's bounds
    lie strictly inside the output range and its unclamped outputs cross both; the
    ``tiling`` case spans more than two tiles in every dimension whose limit allows it.
    """
    errors = []
    lm, lk, ln = limits or default_limits(config)
    for case in cases:
        g = case.gemm
        m, k, n = case.shape
        if case.label == "wrap" and not case.wrapped:
            errors.append("the wrap case's sums stay inside the accumulator range")
        if case.label == "left-shift" and not (np.asarray(g.shift) > 0).all():
            errors.append(f"the left-shift case has shifts {np.asarray(g.shift).tolist()}")
        if case.label == "clamp":
            o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
            unclamped = expected_output(config, dataclasses.replace(g, act_min=o_lo,
                                                                    act_max=o_hi))
            if not (o_lo < g.act_min <= g.act_max < o_hi and (
                    (unclamped < g.act_min) | (unclamped > g.act_max)).any()):
                errors.append(f"the clamp case's bounds {g.act_min}..{g.act_max} do not bite")
        if case.label == "tiling":
            for dim, size, limit, unit in (("M", m, lm, config.block),
                                           ("K", k, lk, config.chunk),
                                           ("N", n, ln, config.cols)):
                if limit > 2 * unit and size <= 2 * unit:
                    errors.append(f"the tiling case's {dim} = {size} is not over two tiles "
                                  f"of {unit}")
    return errors


# --- TFLite oracle --------------------------------------------------------------------------

def oracle_cases(config, path, names):
    """TFLite int8 convolutions as GEMMs: im2col(x) @ W(OHWI -> (K, Cout)), TFLite's ``y``."""
    if not (config.pe_mode == "mac" and config.requant and config.a_bits == 8
            and config.w_bits == 8 and config.a_signed
            and config.w_signed and config.out_bits == 8 and config.out_signed
            and config.acc_bits == 32):
        raise ValueError("TFLite oracle cases need an int8 requantizing mac configuration "
                         "(a8 w8 signed, out 8 signed, acc_bits 32)")
    cases = []
    with np.load(path) as archive:
        for name in names:
            if f"{name}_meta" not in archive:
                raise ValueError(f"oracle case {name!r} is not in {path}")
            c = {key[len(name) + 1:]: archive[key] for key in archive.files
                 if key.startswith(name + "_")}
            meta = json.loads(str(c["meta"]))
            x, w4, y = c["x"], c["w"], c["y"]
            x_zp, y_zp = int(c["x_zp"]), int(c["y_zp"])
            a = golden.im2col(x, meta["kernel"], meta["stride"], meta["padding"], pad_value=x_zp)
            cout = w4.shape[0]
            w = w4.reshape(cout, -1).T
            m, k = a.shape
            if k > config.max_k or cout > config.max_n or m > config.max_m:
                raise ValueError(f"oracle case {name} is {m}x{k}x{cout} (M x K x N), over the "
                                 f"configuration's limits {config.max_m}x{config.max_k}x"
                                 f"{config.max_n}")
            real = golden.real_multiplier(c["x_scale"], c["w_scale"], c["y_scale"])
            m0, shift = golden.quantize_multiplier(real)
            act_min, act_max = golden.activation_range(meta["activation"], c["y_scale"], y_zp)
            gemm = Gemm(a.astype(np.int64), w.astype(np.int64), x_zp,
                        c["b"].astype(np.int64), np.asarray(m0, dtype=np.int64),
                        np.asarray(shift, dtype=np.int64), y_zp, act_min, act_max)
            label = (f"oracle:{name} k{meta['kernel']} s{meta['stride']} {meta['padding']} "
                     f"{meta['activation']}")
            cases.append(Case(label, gemm, y.reshape(m, cout).astype(np.int64)))
    return cases


# --- jobs -----------------------------------------------------------------------------------

def _explicit_gemm(config, entry, rng):
    """A GEMM from a job entry: explicit operands, or ``{"shape": [M, K, N]}`` (random).

    Bit-serial entries may name ``"planes": [a_planes, w_planes]``.
    """
    planes = tuple(entry.get("planes") or (None, None))
    if "shape" in entry:
        m, k, n = entry["shape"]
        (a_lo, a_hi), (w_lo, w_hi) = _ranges(config, planes)
        draw = _extreme if entry.get("extremes") else _uniform
        za = int(rng.integers(a_lo, a_hi + 1)) if config.pe_mode == "mac" else 0
        return _gemm(config, rng, draw(rng, (a_lo, a_hi), (m, k)),
                     draw(rng, (w_lo, w_hi), (k, n)), za, planes)
    fields = {key: entry[key] for key in ("a_zero_point", "out_zero_point", "act_min",
                                            "act_max") if key in entry}
    arrays = {key: np.asarray(entry[key], dtype=np.int64)
              for key in ("bias", "m0", "shift", "threshold", "invert") if key in entry}
    if config.pe_mode == "bitserial":
        fields.update(a_planes=planes[0], w_planes=planes[1])
    return Gemm(np.asarray(entry["a"], dtype=np.int64), np.asarray(entry["w"], dtype=np.int64),
                **fields, **arrays)


def job_cases(config, job):
    """Every case of a job (see :mod:`tests.cocotb.gemm_tb` for the job format), in stream
    order."""
    seed = int(job["seed"])
    cases = []
    spec = job.get("generate")
    if spec:
        limits = spec.get("limits")
        cases += generate_cases(config, seed, int(spec["count"]),
                                tuple(limits) if limits else None, spec.get("edges", True))
    rng = np.random.default_rng([seed, 0x6578])
    for entry in job.get("gemms", ()):
        cases.append(_case(config, entry.get("label", "explicit"),
                           _explicit_gemm(config, entry, rng)))
    oracle = job.get("oracle")
    if oracle:
        path = oracle.get("path") or default_oracle_path()
        cases += oracle_cases(config, path, oracle["cases"])
    return cases
