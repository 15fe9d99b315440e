"""Property tests of golden.fixedpoint against slow Python-int references of the C++.

Every reference below is written from gemmlowp's / TFLite's C++ semantics in plain Python
integers and ``fractions.Fraction`` (exact), never from the golden model's numpy code.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import golden

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=100, deadline=None)

int32s = st.integers(INT32_MIN, INT32_MAX)
exponents = st.integers(0, 31)
shifts = st.integers(-31, 30)
# Realistic multipliers are in [2**30, 2**31); the kernels accept any int32.
multipliers = st.one_of(st.integers(1 << 30, INT32_MAX), int32s)


# --- slow references, from the C++ -------------------------------------------------------

def c_div(n, d):
    """C's integer division: truncates toward zero (Python's // floors)."""
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def wrap32(v):
    """Two's complement int32 wrap-around."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def ref_srdhm(a, b):
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x, e):
    mask = (1 << e) - 1
    remainder = x & mask  # Python's & on negative ints is two's complement
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def ref_round_half_away(v):
    """Round an exact rational to the nearest integer, ties away from zero."""
    v = Fraction(v)
    n = math.floor(abs(v) + Fraction(1, 2))
    return n if v >= 0 else -n


def ref_mbqm(x, m0, shift):
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(wrap32(x * (1 << left)), m0), right)


def ref_quantize_multiplier(real):
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = ref_round_half_away(Fraction(q) * (1 << 31))
    assert abs(q_fixed) <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def ref_activation_range(activation, scale, zero_point, bits, signed):
    qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    scale32 = np.float32(scale)

    def quantize(f):
        # TFLite divides two floats: one IEEE float32 division, then TfLiteRound.
        quotient = np.float32(f) / scale32
        assert quotient.dtype == np.float32
        return zero_point + ref_round_half_away(Fraction(float(quotient)))

    if activation == "relu":
        return max(qmin, quantize(0.0)), qmax
    if activation == "relu6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "relu_n1_to_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def ints(arr):
    """A numpy result as nested Python ints, for comparison with the references."""
    return np.asarray(arr).tolist()


# --- the references agree with the mathematical definitions ------------------------------

@FAST
@given(int32s, int32s)
def test_reference_srdhm_is_round_half_up_of_the_exact_product(a, b):
    assume(not (a == INT32_MIN and b == INT32_MIN))
    exact = Fraction(a * b, 1 << 31)
    assert ref_srdhm(a, b) == math.floor(exact + Fraction(1, 2))


@FAST
@given(int32s, exponents)
def test_reference_rdbpot_is_round_half_away_of_the_exact_quotient(x, e):
    assert ref_rdbpot(x, e) == ref_round_half_away(Fraction(x, 1 << e))


# --- saturating_rounding_doubling_high_mul -----------------------------------------------

@FAST
@given(int32s, int32s)
def test_srdhm_scalar(a, b):
    got = golden.saturating_rounding_doubling_high_mul(a, b)
    assert got.dtype == np.int32
    assert int(got) == ref_srdhm(a, b)


@SLOW
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=40))
def test_srdhm_array(pairs):
    a = np.array([p[0] for p in pairs], dtype=np.int32)
    b = np.array([p[1] for p in pairs], dtype=np.int32)
    got = golden.saturating_rounding_doubling_high_mul(a, b)
    assert got.dtype == np.int32 and got.shape == a.shape
    assert ints(got) == [ref_srdhm(x, y) for x, y in pairs]


@SLOW
@given(st.lists(int32s, min_size=1, max_size=6), st.lists(int32s, min_size=1, max_size=6))
def test_srdhm_broadcasts(a, b):
    got = golden.saturating_rounding_doubling_high_mul(np.array(a)[:, None], np.array(b))
    assert got.shape == (len(a), len(b))
    assert ints(got) == [[ref_srdhm(x, y) for y in b] for x in a]


@pytest.mark.parametrize(("a", "b", "expected"), [
    # The only overflow: (-1) * (-1) in Q31 is +1, which saturates.
    (INT32_MIN, INT32_MIN, INT32_MAX),
    # -2**31 * (2**31 - 1) / 2**31 = -(2**31 - 1) exactly: no rounding, no saturation.
    (INT32_MIN, INT32_MAX, INT32_MIN + 1),
    (INT32_MAX, INT32_MIN, INT32_MIN + 1),
    # (2**31 - 1)**2 / 2**31 = 2**31 - 2 + 2**-31, rounds down.
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),
    (INT32_MIN, 0, 0),
    (INT32_MIN, 1, -1),   # -2**31 / 2**31 = -1 exactly
    (INT32_MIN, -1, 1),
])
def test_srdhm_extremes(a, b, expected):
    assert int(golden.saturating_rounding_doubling_high_mul(a, b)) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    (1 << 30, 1, 1),     # +0.5 -> 1
    (1 << 30, 3, 2),     # +1.5 -> 2
    (-(1 << 30), 1, 0),  # -0.5 -> 0: toward +infinity, not away from zero
    (-(1 << 30), 3, -1),  # -1.5 -> -1
    (3 << 29, -3, -2),   # -2.25 -> -2 (not a tie, for contrast)
])
def test_srdhm_named_ties_round_toward_positive_infinity(a, b, expected):
    assert int(golden.saturating_rounding_doubling_high_mul(a, b)) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    # One off the ties +-2**30 / 2**31 = +-0.5: only the tie itself rounds up.
    ((1 << 30) + 1, 1, 1), ((1 << 30) - 1, 1, 0),
    (-(1 << 30) + 1, 1, 0), (-(1 << 30) - 1, 1, -1),
    ((1 << 30) + 1, -1, -1), (-(1 << 30) - 1, -1, 1),
    ((3 << 29) + 1, 2, 2), (-(3 << 29) - 1, 2, -2),   # +-(1.5 + 2**-30)
])
def test_srdhm_one_off_a_tie_rounds_to_nearest(a, b, expected):
    assert abs(Fraction(a * b, 1 << 31) - expected) < Fraction(1, 2)  # the nearest
    assert ref_srdhm(a, b) == expected
    assert int(golden.saturating_rounding_doubling_high_mul(a, b)) == expected


@st.composite
def srdhm_ties(draw):
    """Pairs (a, b) with a * b an odd multiple of 2**30: a * b / 2**31 ends in exactly .5."""
    t = draw(st.integers(0, 30))
    c_lim = (1 << (31 - t)) - 1
    d_lim = (1 << (1 + t)) - 1
    c = draw(st.integers(-c_lim, c_lim).filter(lambda v: v % 2))
    d = draw(st.integers(-d_lim, d_lim).filter(lambda v: v % 2))
    return c << t, d << (30 - t)


@FAST
@given(srdhm_ties())
def test_srdhm_exact_ties_both_signs_round_up(pair):
    a, b = pair
    assert INT32_MIN <= a <= INT32_MAX and INT32_MIN <= b <= INT32_MAX
    exact = Fraction(a * b, 1 << 31)
    assert exact.denominator == 2
    got = int(golden.saturating_rounding_doubling_high_mul(a, b))
    assert got - exact == Fraction(1, 2)
    assert got == ref_srdhm(a, b)


# --- rounding_divide_by_pot ------------------------------------------------------------

@FAST
@given(int32s, exponents)
def test_rdbpot_scalar(x, e):
    got = golden.rounding_divide_by_pot(x, e)
    assert got.dtype == np.int32
    assert int(got) == ref_rdbpot(x, e)


@SLOW
@given(st.lists(st.tuples(int32s, exponents), min_size=1, max_size=40))
def test_rdbpot_array_with_per_element_exponent(pairs):
    x = np.array([p[0] for p in pairs], dtype=np.int32)
    e = np.array([p[1] for p in pairs], dtype=np.int32)
    got = golden.rounding_divide_by_pot(x, e)
    assert got.dtype == np.int32 and got.shape == x.shape
    assert ints(got) == [ref_rdbpot(v, k) for v, k in pairs]


@SLOW
@given(st.lists(int32s, min_size=1, max_size=6), st.lists(exponents, min_size=1, max_size=6))
def test_rdbpot_broadcasts(xs, es):
    got = golden.rounding_divide_by_pot(np.array(xs)[:, None], np.array(es))
    assert ints(got) == [[ref_rdbpot(v, k) for k in es] for v in xs]


@FAST
@given(int32s)
def test_rdbpot_exponent_0_is_identity(x):
    assert int(golden.rounding_divide_by_pot(x, 0)) == x


@pytest.mark.parametrize(("x", "expected"), [
    (INT32_MIN, -1),          # -1 exactly
    (INT32_MAX, 1),           # 1 - 2**-31
    (1 << 30, 1),             # +0.5 -> 1
    (-(1 << 30), -1),         # -0.5 -> -1: away from zero
    ((1 << 30) - 1, 0),
    (-(1 << 30) + 1, 0),
    (0, 0),
])
def test_rdbpot_exponent_31(x, expected):
    assert int(golden.rounding_divide_by_pot(x, 31)) == expected


@pytest.mark.parametrize(("x", "e", "expected"), [
    (1, 1, 1), (-1, 1, -1), (3, 1, 2), (-3, 1, -2), (5, 1, 3), (-5, 1, -3),
    (12, 3, 2), (-12, 3, -2),   # 1.5 -> 2, -1.5 -> -2
    (20, 3, 3), (-20, 3, -3),   # 2.5 -> 3, -2.5 -> -3 (banker's would give 2, -2)
    (11, 3, 1), (-11, 3, -1), (13, 3, 2), (-13, 3, -2),
])
def test_rdbpot_named_ties_round_away_from_zero(x, e, expected):
    assert int(golden.rounding_divide_by_pot(x, e)) == expected


@st.composite
def rdbpot_ties(draw):
    """(x, e) with x / 2**e ending in exactly .5, of either sign."""
    e = draw(st.integers(1, 31))
    lim = (1 << (32 - e)) - 1  # x = odd * 2**(e-1) must stay in int32
    odd = draw(st.integers(-lim, lim).filter(lambda v: v % 2))
    x = odd << (e - 1)
    assume(INT32_MIN <= x <= INT32_MAX)
    return x, e


@FAST
@given(rdbpot_ties())
def test_rdbpot_exact_ties_both_signs_round_away_from_zero(case):
    x, e = case
    exact = Fraction(x, 1 << e)
    assert exact.denominator == 2
    got = int(golden.rounding_divide_by_pot(x, e))
    assert abs(got) - abs(exact) == Fraction(1, 2)
    assert (got > 0) == (x > 0)


# --- multiply_by_quantized_multiplier ---------------------------------------------------

@FAST
@given(int32s, multipliers, shifts)
def test_mbqm_scalar(x, m0, shift):
    got = golden.multiply_by_quantized_multiplier(x, m0, shift)
    assert got.dtype == np.int32
    assert int(got) == ref_mbqm(x, m0, shift)


@FAST
@given(st.integers(-(1 << 20), 1 << 20), multipliers, st.integers(1, 30))
def test_mbqm_left_shifts(x, m0, shift):
    # Small accumulators shifted left: the common case of multipliers >= 1, and wraps.
    assert int(golden.multiply_by_quantized_multiplier(x, m0, shift)) == ref_mbqm(x, m0, shift)


@SLOW
@given(st.data(), st.integers(1, 5), st.integers(1, 5))
def test_mbqm_per_channel(data, rows, cols):
    x = data.draw(st.lists(st.lists(int32s, min_size=cols, max_size=cols),
                           min_size=rows, max_size=rows))
    m0 = data.draw(st.lists(multipliers, min_size=cols, max_size=cols))
    shift = data.draw(st.lists(shifts, min_size=cols, max_size=cols))
    got = golden.multiply_by_quantized_multiplier(np.array(x, dtype=np.int32), np.array(m0),
                                                  np.array(shift))
    assert got.dtype == np.int32 and got.shape == (rows, cols)
    assert ints(got) == [[ref_mbqm(v, m0[c], shift[c]) for c, v in enumerate(row)] for row in x]


def test_mbqm_left_shift_without_wrap():
    # 1000 * 2**3 * 0.5 = 4000
    assert int(golden.multiply_by_quantized_multiplier(1000, 1 << 30, 3)) == 4000


def test_mbqm_left_shift_that_wraps():
    # 3 * 2**29 << 1 = 3 * 2**30 wraps to -2**30; times 0.5 gives -2**29.
    # Without the wrap the answer would be 3 * 2**29.
    assert int(golden.multiply_by_quantized_multiplier(3 << 29, 1 << 30, 1)) == -(1 << 29)
    # 2**20 << 12 = 2**32 wraps to 0.
    assert int(golden.multiply_by_quantized_multiplier(1 << 20, INT32_MAX, 12)) == 0


def test_mbqm_rounds_twice():
    # 1 * 0.5 = 0.5 -> 1 (SRDHM), then 1 / 2 = 0.5 -> 1 (RDBPOT); single rounding of
    # the exact 0.25 would give 0.
    assert int(golden.multiply_by_quantized_multiplier(1, 1 << 30, -1)) == 1
    # -1 * 0.5 = -0.5 -> 0 (toward +inf), then 0.
    assert int(golden.multiply_by_quantized_multiplier(-1, 1 << 30, -1)) == 0


def test_mbqm_extreme_shifts():
    assert int(golden.multiply_by_quantized_multiplier(INT32_MAX, INT32_MAX, -31)) == 1
    assert int(golden.multiply_by_quantized_multiplier(INT32_MIN, INT32_MIN, -31)) == 1
    assert int(golden.multiply_by_quantized_multiplier(1, 1 << 30, 30)) == 1 << 29


# --- quantize_multiplier ----------------------------------------------------------------

def check_quantize_multiplier(real):
    m0, shift = golden.quantize_multiplier(real)
    assert isinstance(m0, np.int32) and isinstance(shift, np.int32)
    assert (int(m0), int(shift)) == ref_quantize_multiplier(real)


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_any_double(real):
    check_quantize_multiplier(real)


@FAST
@given(st.floats(min_value=1e-6, max_value=4.0))
def test_quantize_multiplier_typical(real):
    check_quantize_multiplier(real)
    check_quantize_multiplier(-real)


@FAST
@given(st.floats(min_value=2.0 ** -36, max_value=2.0 ** -28))
def test_quantize_multiplier_near_the_flush(real):
    check_quantize_multiplier(real)


@SLOW
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=20))
def test_quantize_multiplier_array(reals):
    m0, shift = golden.quantize_multiplier(np.array(reals))
    assert m0.dtype == np.int32 and shift.dtype == np.int32
    assert m0.shape == shift.shape == (len(reals),)
    assert list(zip(ints(m0), ints(shift), strict=True)) == [
        ref_quantize_multiplier(r) for r in reals]


@pytest.mark.parametrize(("real", "expected"), [
    (0.0, (0, 0)),
    (-0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (-0.5, (-(1 << 30), 0)),
    (-0.75, (-(3 << 29), 0)),
    (2.0 ** -10, (1 << 30, -9)),
    # q * 2**31 = 2**30 + 0.5: half away from zero (banker's rounding would give 2**30).
    (0.5 + 2.0 ** -32, ((1 << 30) + 1, 0)),
    (-(0.5 + 2.0 ** -32), (-(1 << 30) - 1, 0)),
    # q = 1 - 2**-40: q * 2**31 rounds to 2**31, the fix-up halves it and bumps the shift.
    (1.0 - 2.0 ** -40, (1 << 30, 1)),
    ((1.0 - 2.0 ** -40) * 2.0 ** -5, (1 << 30, -4)),
    (math.nextafter(1.0, 0.0), (1 << 30, 1)),
    # Negative: q_fixed = -2**31 is not 2**31, so no fix-up: m0 is INT32_MIN.
    (-(1.0 - 2.0 ** -40), (INT32_MIN, 0)),
    # The flush: shift -31 survives, -32 does not.
    (2.0 ** -32, (1 << 30, -31)),
    (2.0 ** -33, (0, 0)),
    (-(2.0 ** -33), (0, 0)),
    (2.0 ** -32 * (1.0 - 2.0 ** -20), (0, 0)),
    # Just below 2**-32 the carry lifts shift from -32 to -31 before the flush test.
    (math.nextafter(2.0 ** -32, 0.0), (1 << 30, -31)),
    (5e-324, (0, 0)),
])
def test_quantize_multiplier_named(real, expected):
    m0, shift = golden.quantize_multiplier(real)
    assert (int(m0), int(shift)) == expected
    assert ref_quantize_multiplier(real) == expected


def test_quantize_multiplier_takes_float32_and_integers():
    assert golden.quantize_multiplier(np.float32(0.75)) == (3 << 29, 0)
    m0, shift = golden.quantize_multiplier(np.array([0.5, 0.375], dtype=np.float32))
    assert m0.tolist() == [1 << 30, 3 << 29] and shift.tolist() == [0, -1]
    assert golden.quantize_multiplier(3) == (3 << 29, 2)
    m0, shift = golden.quantize_multiplier(np.array([1, -2]))
    assert m0.tolist() == [1 << 30, -(1 << 30)] and shift.tolist() == [1, 2]


def test_quantize_multiplier_reconstructs_the_real():
    for real in (0.3, 1.7, 1e-5, 123.456, -0.001):
        m0, shift = golden.quantize_multiplier(real)
        approx = Fraction(int(m0)) * Fraction(2) ** (int(shift) - 31)
        assert abs(approx - Fraction(real)) <= Fraction(2) ** (int(shift) - 32)


# --- round_half_away --------------------------------------------------------------------

finite64 = st.floats(allow_nan=False, allow_infinity=False)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@FAST
@given(finite64)
def test_round_half_away_float64(x):
    got = golden.round_half_away(np.float64(x))
    assert got.dtype == np.float64
    assert float(got) == ref_round_half_away(Fraction(x))


@FAST
@given(finite32)
def test_round_half_away_float32(x):
    got = golden.round_half_away(np.float32(x))
    assert got.dtype == np.float32
    assert float(got) == ref_round_half_away(Fraction(float(np.float32(x))))


@SLOW
@given(st.lists(st.one_of(finite64, st.integers(-1000, 1000).map(lambda n: n / 2)),
                min_size=1, max_size=30))
def test_round_half_away_array(xs):
    got = golden.round_half_away(np.array(xs, dtype=np.float64))
    assert got.shape == (len(xs),)
    assert [float(v) for v in got] == [ref_round_half_away(Fraction(x)) for x in xs]


def test_round_half_away_ties_go_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5, 0.0, 2.0, -2.0])
    assert golden.round_half_away(x).tolist() == [1, 2, 3, 4, -1, -2, -3, -4, 0, 2, -2]
    x32 = x.astype(np.float32)
    assert golden.round_half_away(x32).tolist() == [1, 2, 3, 4, -1, -2, -3, -4, 0, 2, -2]


def test_round_half_away_of_integers_is_float64():
    # Like C's std::round of an integer promoted to double.
    got = golden.round_half_away(np.array([3, -4, 0]))
    assert got.dtype == np.float64 and got.tolist() == [3.0, -4.0, 0.0]


def test_round_half_away_just_below_a_half():
    below = np.float32(0.49999997)  # the float32 just below 0.5; float32(x + 0.5) is 1.0
    assert below == np.nextafter(np.float32(0.5), np.float32(0))
    assert float(golden.round_half_away(below)) == 0.0
    assert float(golden.round_half_away(-below)) == 0.0
    assert float(golden.round_half_away(np.nextafter(0.5, 0.0))) == 0.0
    # Large odd integers are already integral: adding 0.5 would round to even and move them.
    big = np.float64(2.0 ** 52 + 1)
    assert float(golden.round_half_away(big)) == 2.0 ** 52 + 1
    assert float(golden.round_half_away(np.float32(2.0 ** 23 + 1))) == 2.0 ** 23 + 1


# --- requantize --------------------------------------------------------------------------

def int_range(bits, signed):
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def out_dtype(bits, signed):
    if bits <= 8:
        return np.int8 if signed else np.uint8
    return np.int16 if signed else np.uint16


@st.composite
def requantize_cases(draw):
    bits = draw(st.integers(1, 16))
    signed = draw(st.booleans())
    lo, hi = int_range(bits, signed)
    rows = draw(st.integers(0, 4))
    cols = draw(st.integers(1, 5))
    acc = draw(st.lists(st.lists(st.one_of(int32s, st.integers(-5000, 5000)),
                                 min_size=cols, max_size=cols), min_size=rows, max_size=rows))
    if draw(st.booleans()):
        m0 = draw(st.lists(multipliers, min_size=cols, max_size=cols))
        shift = draw(st.lists(shifts, min_size=cols, max_size=cols))
    else:
        m0 = [draw(multipliers)] * cols
        shift = [draw(shifts)] * cols
        m0, shift = m0[0], shift[0]
    zp = draw(st.integers(lo, hi))
    act_min, act_max = sorted(draw(st.tuples(st.integers(lo, hi), st.integers(lo, hi))))
    return dict(acc=acc, rows=rows, cols=cols, m0=m0, shift=shift, zp=zp, act_min=act_min,
                act_max=act_max, bits=bits, signed=signed)


def ref_requantize(c):
    out = []
    for row in c["acc"]:
        out_row = []
        for col, v in enumerate(row):
            m0 = c["m0"][col] if isinstance(c["m0"], list) else c["m0"]
            shift = c["shift"][col] if isinstance(c["shift"], list) else c["shift"]
            # The zero point is added in int32 without saturation (two's complement wrap).
            q = wrap32(ref_mbqm(v, m0, shift) + c["zp"])
            out_row.append(min(max(q, c["act_min"]), c["act_max"]))
        out.append(out_row)
    return out


@SLOW
@given(requantize_cases())
def test_requantize(c):
    acc = np.array(c["acc"], dtype=np.int64).reshape(c["rows"], c["cols"]).astype(np.int32)
    got = golden.requantize(acc, np.array(c["m0"]), np.array(c["shift"]), c["zp"],
                            c["act_min"], c["act_max"], out_bits=c["bits"],
                            out_signed=c["signed"])
    assert got.dtype == out_dtype(c["bits"], c["signed"])
    assert got.shape == (c["rows"], c["cols"])
    assert ints(got) == ref_requantize(c)


@SLOW
@given(int32s, multipliers, shifts, st.integers(-128, 127))
def test_requantize_scalar(acc, m0, shift, zp):
    got = golden.requantize(acc, m0, shift, zp, -128, 127)
    assert got.dtype == np.int8 and got.shape == ()
    assert int(got) == min(max(wrap32(ref_mbqm(acc, m0, shift) + zp), -128), 127)


def test_requantize_per_channel_broadcasts_along_the_last_axis():
    acc = np.array([[100, 100, 100], [-100, -100, -100]], dtype=np.int32)
    m0 = np.array([1 << 30] * 3)
    shift = np.array([0, -1, -2])
    # 100 * 0.5 / 2**[0, 1, 2] = 50, 25, 12.5 -> 13; negatives -50, -25, -12.5 -> -13.
    expected = [[55, 30, 18], [-45, -20, -8]]
    assert golden.requantize(acc, m0, shift, 5, -128, 127).tolist() == expected
    stacked = np.stack([acc, acc[::-1]])  # (2, 2, 3): channels still on the last axis
    assert golden.requantize(stacked, m0, shift, 5, -128, 127).tolist() == [
        expected, expected[::-1]]


def test_requantize_zero_point_addition_wraps_in_int32():
    # (2**31 - 1)**2 / 2**31 rounds to 2**31 - 2; + 10 wraps to -2**31 + 8, clamped to min.
    got = golden.requantize(INT32_MAX, INT32_MAX, 0, 10, -128, 127)
    assert int(got) == -128


def test_requantize_clamps_to_the_activation_bounds():
    acc = np.array([[-1000, -3, 0, 3, 1000]], dtype=np.int32)
    got = golden.requantize(acc, 1 << 30, 1, -2, -5, 4)
    # x * 2 * 0.5 = x, + (-2): [-1002, -5, -2, 1, 998] clamped to [-5, 4]
    assert got.tolist() == [[-5, -5, -2, 1, 4]]


def test_requantize_16_bit_unsigned():
    got = golden.requantize(np.array([70000, -5, 40000]), 1 << 30, 1, 100, 0, 65535,
                            out_bits=16, out_signed=False)
    assert got.dtype == np.uint16
    assert got.tolist() == [65535, 95, 40100]


# --- activation_range -------------------------------------------------------------------

@FAST
@given(st.sampled_from(["linear", "relu", "relu6", "relu_n1_to_1"]),
       st.floats(min_value=1e-30, max_value=1e30), st.integers(1, 16), st.booleans(),
       st.data())
def test_activation_range(activation, scale, bits, signed, data):
    lo, hi = int_range(bits, signed)
    zp = data.draw(st.integers(lo, hi))
    got = golden.activation_range(activation, scale, zp, bits, signed)
    assert all(type(v) is int for v in got)
    assert got == ref_activation_range(activation, scale, zp, bits, signed)


@FAST
@given(st.sampled_from(["relu", "relu6"]), st.floats(min_value=1e-3, max_value=0.2),
       st.integers(-128, 127))
def test_activation_range_int8_typical(activation, scale, zp):
    assert golden.activation_range(activation, scale, zp) == ref_activation_range(
        activation, scale, zp, 8, True)


def test_activation_range_named():
    assert golden.activation_range("linear", 0.1, 3) == (-128, 127)
    assert golden.activation_range("relu", 0.1, -3) == (-3, 127)
    assert golden.activation_range("relu", 0.1, 3, bits=8, signed=False) == (3, 255)
    assert golden.activation_range("relu6", 0.1, -3) == (-3, 57)
    assert golden.activation_range("relu6", 0.01, -3) == (-3, 127)
    # 6 / 12 = 0.5 exactly: half away from zero gives 1 (banker's rounding would give 0).
    assert golden.activation_range("relu6", 12.0, -3) == (-3, -2)
    assert golden.activation_range("relu_n1_to_1", 0.25, 10) == (6, 14)
    # -1 / 0.01 = -100 codes below the zero point, +100 above, clamped to the 8-bit range.
    assert golden.activation_range("relu_n1_to_1", 0.01, 100) == (0, 127)
    assert golden.activation_range("relu_n1_to_1", 0.001, 0, bits=16) == (-1000, 1000)
    # The zero point below qmin: ReLU's lower bound is qmin.
    assert golden.activation_range("relu", 1.0, -128) == (-128, 127)


def test_activation_range_divides_in_float32():
    scale = 2.4000000953674316  # a float32
    # In exact (and float64) arithmetic 6 / scale is just below 2.5 ...
    assert Fraction(6) / Fraction(scale) < Fraction(5, 2)
    assert round(6.0 / scale) == 2
    # ... but the float32 quotient is exactly 2.5, which TfLiteRound takes to 3.
    assert np.float32(6.0) / np.float32(scale) == np.float32(2.5)
    assert golden.activation_range("relu6", scale, 0) == (0, 3)
