"""golden GEMM, convolution, quantization and binary GEMMs against slow Python references.

The references are nested loops over Python ints: no numpy arithmetic, no shortcuts.
"""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import golden

OPERAND_RANGES = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "any16": (-32768, 65535),
}


# --- references ----------------------------------------------------------------------------

def ref_wrap(v, bits):
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


def ref_gemm_unwrapped(a, w, a_zp=0, w_zp=0, bias=None, n=None):
    """Exact sums as Python ints; ``a`` (M, K) and ``w`` (K, N) as nested lists."""
    m, k = len(a), len(w)
    n = len(w[0]) if n is None else n
    w_zps = w_zp if isinstance(w_zp, list) else [w_zp] * n
    out = []
    for i in range(m):
        row = []
        for j in range(n):
            acc = 0
            for t in range(k):
                acc += (a[i][t] - a_zp) * (w[t][j] - w_zps[j])
            if bias is not None:
                acc += bias[j]
            row.append(acc)
        out.append(row)
    return out


def ref_gemm(a, w, a_zp=0, w_zp=0, bias=None, acc_bits=32, n=None):
    return [[ref_wrap(v, acc_bits) for v in row]
            for row in ref_gemm_unwrapped(a, w, a_zp, w_zp, bias, n)]


def ref_output_size(size, kernel, stride, dilation, padding):
    """TensorFlow's rule (``tf.nn.convolution`` docs), with a dilated kernel's span."""
    span = (kernel - 1) * dilation + 1
    if padding == "VALID":
        # Count the window positions that fit entirely inside the input.
        out = len(range(0, size - span + 1, stride))
        return out, 0, 0
    out = math.ceil(size / stride)
    pad_along = max((out - 1) * stride + span - size, 0)
    return out, pad_along // 2, pad_along - pad_along // 2


def ref_conv2d(x, w, bias, x_zp, w_zp, stride, padding, dilation, acc_bits=32):
    """Naive NHWC x OHWI convolution; taps outside the input are skipped (= x_zp padding)."""
    n_, h, wd, c_ = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    o_, kh, kw = len(w), len(w[0]), len(w[0][0])
    (sh, sw), (dh, dw) = stride, dilation
    oh, pt, _ = ref_output_size(h, kh, sh, dh, padding)
    ow, pl, _ = ref_output_size(wd, kw, sw, dw, padding)
    w_zps = w_zp if isinstance(w_zp, list) else [w_zp] * o_
    out = [[[[0] * o_ for _ in range(ow)] for _ in range(oh)] for _ in range(n_)]
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for o in range(o_):
                    acc = 0 if bias is None else bias[o]
                    for di in range(kh):
                        for dj in range(kw):
                            r = i * sh + di * dh - pt
                            col = j * sw + dj * dw - pl
                            if not (0 <= r < h and 0 <= col < wd):
                                continue
                            for c in range(c_):
                                acc += (x[n][r][col][c] - x_zp) * (w[o][di][dj][c] - w_zps[o])
                    out[n][i][j][o] = ref_wrap(acc, acc_bits)
    return out


def ref_im2col(x, kernel, stride, padding, pad_value, dilation):
    n_, h, wd, c_ = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, pt, _ = ref_output_size(h, kh, sh, dh, padding)
    ow, pl, _ = ref_output_size(wd, kw, sw, dw, padding)
    rows = []
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                row = []
                for di in range(kh):
                    for dj in range(kw):
                        r, col = i * sh + di * dh - pt, j * sw + dj * dw - pl
                        for c in range(c_):
                            inside = 0 <= r < h and 0 <= col < wd
                            row.append(x[n][r][col][c] if inside else pad_value)
                rows.append(row)
    return rows


def ref_pack(bits_along_k):
    """Little-endian packing of one 0/1 sequence: element k is bit k % 8 of byte k // 8."""
    out = [0] * math.ceil(len(bits_along_k) / 8)
    for k, b in enumerate(bits_along_k):
        out[k // 8] |= b << (k % 8)
    return out


def random_ints(rng, lo, hi, shape, extremes=0.2):
    """Uniform ints in [lo, hi] with a fraction of them set to lo or hi."""
    x = rng.integers(lo, hi, size=shape, endpoint=True)
    edge = rng.random(shape) < extremes
    x[edge] = rng.choice([lo, hi], size=int(edge.sum()))
    return x


# --- gemm --------------------------------------------------------------------------------

def test_gemm_random_shapes_and_zero_points(rng):
    for _ in range(150):
        lo, hi = OPERAND_RANGES[rng.choice(list(OPERAND_RANGES))]
        m, k, n = (int(v) for v in rng.integers(0, 7, size=3))
        k = int(rng.integers(0, 20))
        a = random_ints(rng, lo, hi, (m, k))
        w = random_ints(rng, lo, hi, (k, n))
        a_zp = int(rng.choice([lo, hi, 0, rng.integers(lo, hi, endpoint=True)]))
        if rng.random() < 0.5:
            w_zp = random_ints(rng, lo, hi, (n,), extremes=0.5).tolist()
        else:
            w_zp = int(rng.choice([lo, hi, 0]))
        acc_bits = int(rng.choice([32, 32, 24, 16, 12, 8, 1, int(rng.integers(1, 33))]))
        half = 1 << (acc_bits - 1)
        bias = (random_ints(rng, -half, half - 1, (n,)).tolist() if rng.random() < 0.6
                else None)
        got = golden.gemm(a, w, a_zp, np.array(w_zp, dtype=np.int64),
                          None if bias is None else np.array(bias, dtype=np.int64), acc_bits)
        assert got.dtype == np.int32 and got.shape == (m, n)
        assert got.tolist() == ref_gemm(a.tolist(), w.tolist(), a_zp, w_zp, bias, acc_bits, n)


def test_gemm_narrow_accumulator_wraps(rng):
    a = random_ints(rng, -128, 127, (6, 40), extremes=0.5)
    w = random_ints(rng, -128, 127, (40, 5), extremes=0.5)
    bias = rng.integers(-(1 << 15), 1 << 15, size=5)
    exact = ref_gemm_unwrapped(a.tolist(), w.tolist(), 3, -7, bias.tolist())
    assert any(not -(1 << 15) <= v < (1 << 15) for row in exact for v in row), \
        "the data must overflow a 16-bit accumulator"
    got = golden.gemm(a, w, 3, -7, bias, acc_bits=16)
    assert got.tolist() == [[ref_wrap(v, 16) for v in row] for row in exact]
    assert (got >= -(1 << 15)).all() and (got < (1 << 15)).all()


def test_gemm_int32_accumulator_wraps():
    k = 200
    a = np.full((1, k), 65535)
    w = np.full((k, 1), -32768)
    exact = k * 65535 * -32768
    assert exact < -(1 << 31)
    assert golden.gemm(a, w).tolist() == [[ref_wrap(exact, 32)]]


def test_gemm_bias_can_wrap_the_accumulator():
    got = golden.gemm(np.array([[1]]), np.array([[1]]), bias=np.array([(1 << 31) - 1]))
    assert got.tolist() == [[-(1 << 31)]]
    got = golden.gemm(np.array([[127]]), np.array([[1]]), bias=np.array([1]), acc_bits=8)
    assert got.tolist() == [[-128]]


@pytest.mark.parametrize("k", [0, 1])
def test_gemm_tiny_k(rng, k):
    a = random_ints(rng, -32768, 65535, (3, k))
    w = random_ints(rng, -32768, 65535, (k, 4))
    bias = rng.integers(-1000, 1000, size=4)
    got = golden.gemm(a, w, 17, np.array([0, 1, -1, 65535]), bias)
    assert got.shape == (3, 4)
    assert got.tolist() == ref_gemm(a.tolist(), w.tolist(), 17, [0, 1, -1, 65535],
                                    bias.tolist(), n=4)


def test_gemm_empty_m_and_n():
    assert golden.gemm(np.zeros((0, 5), dtype=int), np.ones((5, 3), dtype=int)).shape == (0, 3)
    assert golden.gemm(np.ones((2, 5), dtype=int), np.zeros((5, 0), dtype=int)).shape == (2, 0)


def test_gemm_16_bit_extremes_k_70000(rng):
    k = 70000
    a = rng.choice([-32768, 65535], size=(2, k))
    w = rng.choice([-32768, 65535], size=(k, 3))
    a_zp, w_zp = 65535, [-32768, 65535, 0]
    got = golden.gemm(a, w, a_zp, np.array(w_zp))
    assert got.tolist() == ref_gemm(a.tolist(), w.tolist(), a_zp, w_zp)


def test_gemm_exact_beyond_float64_mantissa(rng):
    # Products of (65535 - -32768)**2 ~ 2**33.2 summed over 2**20 terms reach ~2**53.2:
    # a single float64 dot product cannot hold the sum exactly, so K must be chunked.
    k = 1 << 20
    a = np.full((1, k), 65535)
    w = np.full((k, 2), 65535)
    # 2**20 - 999 odd products and 999 even ones: column 0's sum is odd, and an odd
    # number above 2**53 has no float64 representation.
    a[0, rng.choice(k, size=999, replace=False)] = 65534
    w[rng.choice(k, size=1000, replace=False), 1] = -32768
    a_zp, w_zp = -32768, -32768
    # Exact int64 sums (numpy's integer matmul does not use BLAS; |sums| < 2**54).
    exact = ((a - a_zp) @ (w - w_zp)).tolist()
    largest = (65535 - a_zp) * (65535 - w_zp)
    assert k * largest > 2 ** 53
    assert exact[0][0] > 2 ** 53 and exact[0][0] % 2 == 1
    assert int(float(exact[0][0])) != exact[0][0], "the sum must not fit a float64"
    got = golden.gemm(a, w, a_zp, w_zp)
    assert got.tolist() == [[ref_wrap(v, 32) for v in exact[0]]]


def test_gemm_exact_beyond_float32_mantissa(rng):
    # int8 products summed over K = 5000 go far past 2**24 but stay exact.
    k = 5000
    a = random_ints(rng, -128, 127, (3, k), extremes=0.7)
    w = random_ints(rng, -128, 127, (k, 4), extremes=0.7)
    exact = ref_gemm_unwrapped(a.tolist(), w.tolist(), -128, 127)
    assert max(abs(v) for row in exact for v in row) > 1 << 24
    assert golden.gemm(a, w, -128, 127).tolist() == exact


# --- exactness boundaries of the float paths ------------------------------------------------
#
# golden.gemm sums K in chunks of 2**24 // p (float32) or 2**53 // p (float64) terms, p the
# largest |product| its operands allow, so that no partial sum can pass the float's exact
# range. These operands put a column's whole sum at 2**b - 1, 2**b and 2**b + 1 with the
# fewest terms possible: K is then at most twice the chunk, so a bound only twice too large
# would take the column in one dot product, and 2**b + 1 has no float representation.

#: Operand types with a zero point: (lo, hi, zero_point), values in lo..hi.
BYTE_OPERANDS = {f"{name}_zp{zp}": (lo, hi, zp)
                 for name, (lo, hi) in (("int8", (-128, 127)), ("uint8", (0, 255)))
                 for zp in (lo, (lo + hi + 1) // 2, hi)}
WORD_OPERANDS = {f"{name}_zp{zp}": (lo, hi, zp)
                 for name, (lo, hi) in (("int16", (-32768, 32767)), ("uint16", (0, 65535)))
                 for zp in (lo, (lo + hi + 1) // 2, hi)}
#: Any 16-bit operand (-32768..65535) with the zero point at one end: the largest |product|
#: golden.gemm accepts, (65535 + 32768)**2 ~ 2**33.2, of either sign, so the fewest terms
#: (about 932,000) reach 2**53.
WIDEST_OPERANDS = {"any16_zp-32768": (-32768, 65535, -32768),
                   "any16_zp65535": (-32768, 65535, 65535)}


def largest_centered(lo, hi, zp):
    """``(sign, magnitude)`` of the largest ``|x - zp|`` over ``x`` in ``lo..hi``."""
    return (1, hi - zp) if hi - zp >= zp - lo else (-1, zp - lo)


def boundary_operands(targets, a_operand, w_operand):
    """Centred operands ``ca`` (K,) and ``cw`` (K, N) with ``ca @ cw == sign * targets``.

    Every product has the sign of the two extremes' product; column ``j`` is ``q`` extreme
    products ``A * W`` (the largest allowed), then ``t * W`` and ``1 * u`` for the rest of
    ``targets[j]``; the other columns are 0 on those two terms. Returns ``(ca, cw, sign,
    A * W)``.
    """
    (sa, big_a), (sw, big_w) = largest_centered(*a_operand), largest_centered(*w_operand)
    n = len(targets)
    split = [divmod(target, big_a * big_w) for target in targets]
    bulk = max(q for q, _ in split)
    ca = np.zeros(bulk + 2 * n, dtype=np.int64)
    cw = np.zeros((bulk + 2 * n, n), dtype=np.int64)
    ca[:bulk] = sa * big_a
    for j, (q, rest) in enumerate(split):
        t, u = divmod(rest, big_w)
        cw[:q, j] = sw * big_w
        ca[bulk + 2 * j:bulk + 2 * j + 2] = sa * t, sa
        cw[bulk + 2 * j:bulk + 2 * j + 2, j] = sw * big_w, sw * u
    return ca, cw, sa * sw, big_a * big_w


def check_boundary_gemm(rng, float_bits, a_operand, w_operand, per_column):
    """One GEMM whose first row sums to 2**b - 1, 2**b and 2**b + 1 in columns 0, 1, 2.

    Row 1 and column 3 are random over the operands' ranges (column 3 with its own zero
    point when ``per_column``), within the same largest product.
    """
    exact_bits = {32: 24, 64: 53}[float_bits]
    targets = [(1 << exact_bits) + d for d in (-1, 0, 1)]
    ca, cw, sign, largest = boundary_operands(targets, a_operand, w_operand)
    k = len(ca)
    (a_lo, a_hi, a_zp), (w_lo, w_hi, w_zp) = a_operand, w_operand
    chunk = (1 << exact_bits) // largest
    # The data is what the comment above says: golden must split every column, and a chunk
    # twice as long would take every column whole.
    assert chunk < k <= 2 * chunk
    a = np.empty((2, k), dtype=np.int64)
    a[0] = ca + a_zp
    a[1] = rng.integers(a_lo, a_hi, size=k, endpoint=True)
    w = np.empty((k, 4), dtype=np.int64)
    w[:, :3] = cw + w_zp
    zps = np.full(4, w_zp)
    if per_column:
        # Another zero point in column 3, its values no further from it than W.
        zps[3] = rng.integers(w_lo, w_hi, endpoint=True)
        span = largest_centered(w_lo, w_hi, w_zp)[1]
        w[:, 3] = rng.integers(max(w_lo, zps[3] - span), min(w_hi, zps[3] + span), size=k,
                               endpoint=True)
    else:
        w[:, 3] = rng.integers(w_lo, w_hi, size=k, endpoint=True)
    assert a.min() >= a_lo and a.max() <= a_hi and w.min() >= w_lo and w.max() <= w_hi
    got = golden.gemm(a, w, a_zp, zps if per_column else w_zp)
    if float_bits == 32:
        exact = ref_gemm_unwrapped(a.tolist(), w.tolist(), a_zp, zps.tolist())
    else:
        # K is a million or more: exact int64 arithmetic (|sums| < 2**55), which numpy does
        # without BLAS, instead of Python loops.
        exact = ((a - a_zp) @ (w - zps)).tolist()
    assert exact[0][:3] == [sign * t for t in targets]
    assert got.tolist() == [[ref_wrap(v, 32) for v in row] for row in exact]


@pytest.mark.parametrize("per_column", [False, True], ids=["per_tensor", "per_column"])
@pytest.mark.parametrize("w_operand", BYTE_OPERANDS)
@pytest.mark.parametrize("a_operand", BYTE_OPERANDS)
def test_gemm_float32_exact_at_2_pow_24(rng, a_operand, w_operand, per_column):
    check_boundary_gemm(rng, 32, BYTE_OPERANDS[a_operand], BYTE_OPERANDS[w_operand],
                        per_column)


@pytest.mark.parametrize("per_column", [False, True], ids=["per_tensor", "per_column"])
@pytest.mark.parametrize("w_operand", WIDEST_OPERANDS)
@pytest.mark.parametrize("a_operand", WIDEST_OPERANDS)
def test_gemm_float64_exact_at_2_pow_53(rng, a_operand, w_operand, per_column):
    check_boundary_gemm(rng, 64, WIDEST_OPERANDS[a_operand], WIDEST_OPERANDS[w_operand],
                        per_column)


@pytest.mark.slow
@pytest.mark.parametrize("w_operand", WORD_OPERANDS)
@pytest.mark.parametrize("a_operand", WORD_OPERANDS)
def test_gemm_float64_exact_at_2_pow_53_every_16_bit_zero_point(rng, a_operand, w_operand):
    # 2 to 8 million terms per GEMM (zero points in the middle of the range make the
    # largest product small); about a minute in all.
    check_boundary_gemm(rng, 64, WORD_OPERANDS[a_operand], WORD_OPERANDS[w_operand], False)


# --- conv_output_shape, im2col, conv2d --------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 7), st.integers(1, 7),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["VALID", "SAME"]))
def test_conv_output_shape(h, w, kh, kw, sh, sw, dh, dw, padding):
    got = golden.conv_output_shape(h, w, (kh, kw), (sh, sw), padding, (dh, dw))
    oh, pt, pb = ref_output_size(h, kh, sh, dh, padding)
    ow, pl, pr = ref_output_size(w, kw, sw, dw, padding)
    assert got == (oh, ow, (pt, pb), (pl, pr))


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "expected"), [
    (5, 3, 1, "VALID", (3, 0, 0)),
    (5, 3, 2, "VALID", (2, 0, 0)),
    (2, 3, 1, "VALID", (0, 0, 0)),
    (5, 3, 1, "SAME", (5, 1, 1)),
    (5, 3, 2, "SAME", (3, 1, 1)),
    (6, 3, 2, "SAME", (3, 0, 1)),   # the odd pixel of padding goes after
    (4, 4, 1, "SAME", (4, 1, 2)),
    (7, 1, 3, "SAME", (3, 0, 0)),
])
def test_conv_output_shape_named(size, kernel, stride, padding, expected):
    oh, ow, pad_h, pad_w = golden.conv_output_shape(size, size, kernel, stride, padding)
    assert (oh, *pad_h) == expected and (ow, *pad_w) == expected


def test_conv_output_shape_dilation():
    # Kernel 3, dilation 2: span 5.
    assert golden.conv_output_shape(9, 9, 3, 1, "VALID", 2)[:2] == (5, 5)
    assert golden.conv_output_shape(9, 9, 3, 1, "SAME", 2) == (9, 9, (2, 2), (2, 2))


CONV_GEOMETRIES = [
    # (h, w, kernel, stride, padding, dilation)
    (5, 5, (3, 3), (1, 1), "SAME", (1, 1)),
    (5, 5, (3, 3), (1, 1), "VALID", (1, 1)),
    (7, 6, (3, 3), (2, 2), "SAME", (1, 1)),
    (7, 6, (3, 3), (2, 2), "VALID", (1, 1)),
    (8, 9, (2, 3), (3, 1), "SAME", (1, 1)),
    (8, 9, (3, 2), (1, 3), "VALID", (1, 1)),
    (6, 7, (1, 4), (2, 3), "SAME", (1, 1)),
    (9, 9, (3, 3), (1, 1), "SAME", (2, 2)),
    (9, 8, (3, 2), (2, 1), "VALID", (2, 2)),
    (6, 6, (4, 4), (3, 3), "SAME", (1, 1)),
    (4, 5, (1, 1), (3, 2), "VALID", (1, 1)),
    (5, 5, (5, 5), (1, 1), "VALID", (1, 1)),
    (3, 3, (5, 5), (1, 1), "SAME", (1, 1)),
]


@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding", "dilation"),
                         CONV_GEOMETRIES)
def test_conv2d_matches_naive_convolution(rng, h, w, kernel, stride, padding, dilation):
    n, c, o = 2, 3, 4
    x = random_ints(rng, -128, 127, (n, h, w, c))
    wt = random_ints(rng, -128, 127, (o, *kernel, c))
    bias = rng.integers(-5000, 5000, size=o)
    x_zp = int(rng.integers(-128, 128))
    w_zp = rng.integers(-5, 6, size=o)
    got = golden.conv2d(x, wt, bias, x_zp, w_zp, stride, padding, dilation)
    expected = ref_conv2d(x.tolist(), wt.tolist(), bias.tolist(), x_zp, w_zp.tolist(), stride,
                          padding, dilation)
    assert got.dtype == np.int32
    assert got.tolist() == expected


def test_conv2d_padded_taps_are_the_zero_point():
    # A 3x3 SAME convolution of a constant image equal to the zero point is all bias:
    # padded taps must contribute exactly like in-image taps.
    x = np.full((1, 4, 4, 2), 37)
    w = np.arange(1, 37).reshape(2, 3, 3, 2)
    got = golden.conv2d(x, w, np.array([5, -5]), x_zero_point=37, padding="SAME")
    assert (got == np.array([5, -5])).all()
    # With zero point 0 the corner output sees only 4 of the 9 taps.
    got = golden.conv2d(np.ones((1, 3, 3, 1), dtype=int), np.ones((1, 3, 3, 1), dtype=int),
                        padding="SAME")
    assert got[0, :, :, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


def test_conv2d_wraps_a_narrow_accumulator(rng):
    x = random_ints(rng, -128, 127, (1, 5, 5, 4), extremes=0.8)
    w = random_ints(rng, -128, 127, (3, 3, 3, 4), extremes=0.8)
    expected_wide = ref_conv2d(x.tolist(), w.tolist(), None, 0, 0, (1, 1), "SAME", (1, 1), 64)
    assert any(abs(v) >= 1 << 15 for v in np.ravel(expected_wide))
    got = golden.conv2d(x, w, padding="SAME", acc_bits=16)
    assert got.tolist() == ref_conv2d(x.tolist(), w.tolist(), None, 0, 0, (1, 1), "SAME",
                                      (1, 1), 16)


@pytest.mark.parametrize(("h", "w", "kernel", "stride", "padding", "dilation"),
                         CONV_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_im2col_matches_naive_unfold(rng, h, w, kernel, stride, padding, dilation, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=(2, h, w, 3), endpoint=True).astype(dtype)
    pad_value = int(rng.integers(info.min, info.max, endpoint=True))
    got = golden.im2col(x, kernel, stride, padding, pad_value, dilation)
    assert got.dtype == dtype
    expected = ref_im2col(x.tolist(), kernel, stride, padding, pad_value, dilation)
    assert got.shape == (len(expected), kernel[0] * kernel[1] * 3)
    assert got.tolist() == expected


def test_conv_gemm_shape():
    oh, ow, _, _ = golden.conv_output_shape(7, 6, (3, 2), 2, "SAME")
    assert golden.conv_gemm_shape(2, 7, 6, 5, (3, 2), 8, 2, "SAME") == (2 * oh * ow, 30, 8)


# --- quantize, dequantize, choose_qparams ----------------------------------------------------

def ref_qrange(bits, signed, narrow_range=False):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return lo + int(narrow_range), hi


def ref_round_half_away(v):
    """Nearest integer to the exact value of float ``v``, ties away from zero."""
    v = Fraction(v)
    n = math.floor(abs(v) + Fraction(1, 2))
    return n if v >= 0 else -n


def ref_zero_point_candidates(lo, hi, bits, signed, narrow_range=False):
    """gemmlowp's ``ChooseQuantizationParams`` in Python floats (IEEE doubles).

    Returns ``(scale, chosen, other)``: the zero point from the end with the smaller
    error estimate and the one from the other end, each clamped and rounded half away.
    """
    qmin, qmax = ref_qrange(bits, signed, narrow_range)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    from_min, from_max = qmin - lo / scale, qmax - hi / scale
    nudged = [ref_round_half_away(min(max(z, qmin), qmax)) for z in (from_min, from_max)]
    if abs(qmin) + abs(lo / scale) < abs(qmax) + abs(hi / scale):
        return scale, nudged[0], nudged[1]
    return scale, nudged[1], nudged[0]


def ref_quantize(x, scale, zero_point, bits, signed, narrow_range=False):
    """``clamp(round_half_away(x / scale) + zero_point)``, divided in ``x``'s float type."""
    qmin, qmax = ref_qrange(bits, signed, narrow_range)
    quotient = x.dtype.type(x) / x.dtype.type(scale)
    return min(max(ref_round_half_away(float(quotient)) + zero_point, qmin), qmax)


reals = st.one_of(st.just(0.0), st.floats(min_value=1e-4, max_value=1e4),
                  st.floats(min_value=-1e4, max_value=-1e-4))


@settings(max_examples=200, deadline=None)
@given(reals, reals, st.integers(2, 16), st.booleans(), st.booleans())
def test_choose_qparams_asymmetric(v1, v2, bits, signed, narrow_range):
    lo, hi = min(v1, v2), max(v1, v2)
    qmin, qmax = ref_qrange(bits, signed, narrow_range)
    scale, zp = golden.choose_qparams(lo, hi, bits, signed, narrow_range=narrow_range)
    assert type(scale) is float and type(zp) is int
    assert scale > 0 and qmin <= zp <= qmax
    # Real 0.0 is exactly representable.
    q0 = golden.quantize(np.array([0.0, -0.0]), scale, zp, bits, signed, narrow_range)
    assert q0.tolist() == [zp, zp]
    assert golden.dequantize(np.array(zp), scale, zp) == 0.0
    # The range (widened to contain 0) is covered to within half a step at either end.
    rmin, rmax = min(lo, 0.0), max(hi, 0.0)
    if rmin == rmax:
        # The single point 0: scale 1 and the code nearest 0 (0 unless it is not a code).
        assert (scale, zp) == (1.0, min(max(0, qmin), qmax))
        return
    assert math.isclose(scale, (rmax - rmin) / (qmax - qmin), rel_tol=1e-12)
    slack = scale * (0.5 + 1e-6)
    assert scale * (qmin - zp) <= rmin + slack
    assert scale * (qmax - zp) >= rmax - slack
    probe = np.linspace(rmin, rmax, 101)
    error = np.abs(golden.dequantize(
        golden.quantize(probe, scale, zp, bits, signed, narrow_range), scale, zp) - probe)
    assert error.max() <= slack


@settings(max_examples=200, deadline=None)
@given(reals, reals, st.integers(2, 16), st.booleans())
def test_choose_qparams_symmetric(v1, v2, bits, narrow_range):
    lo, hi = min(v1, v2), max(v1, v2)
    qmin, qmax = ref_qrange(bits, True, narrow_range)
    scale, zp = golden.choose_qparams(lo, hi, bits, True, symmetric=True,
                                      narrow_range=narrow_range)
    assert zp == 0
    bound = max(abs(lo), abs(hi))
    if bound == 0:
        assert scale == 1.0
        return
    assert math.isclose(scale * qmax, bound, rel_tol=1e-12)
    probe = np.linspace(lo, hi, 101)
    q = golden.quantize(probe, scale, 0, bits, True, narrow_range)
    assert q.min() >= qmin
    assert np.abs(golden.dequantize(q, scale, 0) - probe).max() <= scale * (0.5 + 1e-6)


def test_choose_qparams_picks_the_end_gemmlowp_picks(rng):
    # Ranges whose zero point is a tie k + 1/2: from the two ends it comes out a few ulps
    # apart, on either side of the tie, so which end is used decides the rounding.
    picked = {"min": 0, "max": 0}
    for _ in range(300):
        bits, signed = int(rng.integers(2, 17)), bool(rng.random() < 0.5)
        narrow = signed and bool(rng.random() < 0.3)
        qmin, qmax = ref_qrange(bits, signed, narrow)
        tie = int(rng.integers(qmin, qmax)) + 0.5
        step = float(np.exp(rng.uniform(np.log(1e-6), np.log(1e3))))
        lo = (qmin - tie) * step
        hi = lo + (qmax - qmin) * step
        scale, chosen, other = ref_zero_point_candidates(lo, hi, bits, signed, narrow)
        assert golden.choose_qparams(lo, hi, bits, signed, narrow_range=narrow) == (scale,
                                                                                   chosen)
        if chosen != other:
            picked["min" if chosen == ref_round_half_away(qmin - min(lo, 0.0) / scale)
                   else "max"] += 1
    assert min(picked.values()) >= 5, picked


def test_choose_qparams_of_a_point_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert golden.choose_qparams(0.0, 0.0) == (1.0, 0)
        # [-1, 1] over -8..7: scale 2/15, zero point -8 + 7.5 = 7 - 7.5 = -0.5 -> -1.
        scale, zp = golden.choose_qparams(np.array([0.0, -1.0]), np.array([0.0, 1.0]), 4)
        assert scale.tolist() == [1.0, 2.0 / 15] and zp.tolist() == [0, -1]


def test_defaults_are_signed_8_bit_full_range():
    scale, zp = golden.choose_qparams(0.0, 2.55)
    assert math.isclose(scale, 0.01, rel_tol=1e-15) and zp == -128
    q = golden.quantize(np.array([-1e9, -128.5, 1e9, -3.5]), 1.0, 0)
    assert q.dtype == np.int8 and q.tolist() == [-128, -128, 127, -4]


def test_quantize_matches_the_reference_beyond_the_range(rng):
    for _ in range(40):
        bits, signed = int(rng.integers(1, 17)), bool(rng.random() < 0.5)
        narrow = bits > 1 and bool(rng.random() < 0.3)
        qmin, qmax = ref_qrange(bits, signed, narrow)
        zp = int(rng.integers(*ref_qrange(bits, signed), endpoint=True))
        scale = float(np.exp(rng.uniform(np.log(1e-3), np.log(10.0))))
        dtype = np.float32 if rng.random() < 0.5 else np.float64
        # Codes spread well past both ends, a few at huge values.
        x = (rng.uniform(qmin - zp - 3 * (qmax - qmin) - 5, qmax - zp + 3 * (qmax - qmin) + 5,
                         size=30) * scale)
        x[rng.random(30) < 0.1] = rng.choice([-1e30, 1e30, -3e18, 3e18])
        x = x.astype(dtype)
        got = golden.quantize(x, scale, zp, bits, signed, narrow)
        expected = [ref_quantize(v, scale, zp, bits, signed, narrow) for v in x]
        assert got.tolist() == expected, (bits, signed, narrow, zp, scale)
        assert qmin in expected and qmax in expected


def test_choose_qparams_per_channel_equals_per_tensor(rng):
    lo = -rng.random(6) * 10
    hi = rng.random(6) * 3
    lo[2], hi[4] = 0.0, 0.0
    for symmetric in (False, True):
        scale, zp = golden.choose_qparams(lo, hi, 8, True, symmetric=symmetric)
        assert scale.shape == zp.shape == (6,)
        assert scale.dtype == np.float64 and zp.dtype == np.int64
        for c in range(6):
            assert (float(scale[c]), int(zp[c])) == golden.choose_qparams(
                float(lo[c]), float(hi[c]), 8, True, symmetric=symmetric)


@pytest.mark.parametrize(("lo", "hi", "bits", "signed", "expected"), [
    # scale 0.5, zero point exactly 0.5 from either end: away from zero gives 1, not 0.
    (-0.25, 1.25, 2, False, (0.5, 1)),
    (-1.25, 0.25, 2, False, (0.5, 3)),    # 2.5 -> 3, not 2
    (-1.5, 253.5, 8, True, (1.0, -127)),  # -126.5 -> -127, not -126
    (-2.5, 252.5, 8, True, (1.0, -126)),  # -125.5 -> -126 (banker's agrees)
    (0.0, 2.55, 8, False, (0.01, 0)),
    (-2.56, 0.0, 8, True, (2.56 / 255, 127)),
])
def test_choose_qparams_zero_point_ties_round_away_from_zero(lo, hi, bits, signed, expected):
    scale, zp = golden.choose_qparams(lo, hi, bits, signed)
    assert math.isclose(scale, expected[0], rel_tol=1e-15) and zp == expected[1]


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_quantize_per_channel_axis(rng, axis):
    x = rng.normal(0, 4, size=(3, 4, 5))
    channels = x.shape[axis]
    scale = rng.uniform(0.01, 0.2, size=channels)
    zp = rng.integers(-20, 20, size=channels)
    q = golden.quantize(x, scale, zp, axis=axis)
    assert q.dtype == np.int8 and q.shape == x.shape
    moved = np.moveaxis(q, axis, 0)
    x_moved = np.moveaxis(x, axis, 0)
    for c in range(channels):
        assert (moved[c] == golden.quantize(x_moved[c], float(scale[c]), int(zp[c]))).all()
    back = golden.dequantize(q, scale, zp, axis=axis)
    back_moved = np.moveaxis(back, axis, 0)
    for c in range(channels):
        expected = [float(scale[c]) * (v - int(zp[c])) for v in moved[c].ravel().tolist()]
        assert back_moved[c].ravel().tolist() == expected


def test_quantize_ties_round_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, -0.49])
    assert golden.quantize(x, 1.0, 0).tolist() == [1, 2, 3, -1, -2, -3, 0, 0]
    # Ties after the division: 0.375 / 0.25 = 1.5 -> 2, -0.625 / 0.25 = -2.5 -> -3.
    assert golden.quantize(np.array([0.375, -0.625]), 0.25, 10).tolist() == [12, 7]
    assert golden.quantize(np.array([2.5, -2.5], dtype=np.float32), 1.0, 0).tolist() == [3, -3]


def test_quantize_divides_in_the_input_float_type():
    # float32(6) / float32(2.4000000953674316) is exactly 2.5 -> 3; in float64 it is 2.4999999.
    scale = 2.4000000953674316
    assert golden.quantize(np.array([6.0], dtype=np.float32), scale, 0).tolist() == [3]
    assert golden.quantize(np.array([6.0]), scale, 0).tolist() == [2]


@pytest.mark.parametrize(("bits", "signed", "narrow", "dtype"), [
    (8, True, False, np.int8), (8, False, False, np.uint8), (4, True, True, np.int8),
    (12, True, False, np.int16), (16, False, False, np.uint16), (1, False, False, np.uint8),
])
def test_quantize_clamps_and_picks_the_dtype(bits, signed, narrow, dtype):
    qmin, qmax = ref_qrange(bits, signed, narrow)
    q = golden.quantize(np.array([-1e30, -1e6, 1e6, 1e30]), 0.5, 0 if signed else qmin, bits,
                        signed, narrow)
    assert q.dtype == dtype
    assert q.tolist() == [qmin, qmin, qmax, qmax]


def test_qrange():
    assert golden.qrange() == (-128, 127)
    assert golden.qrange(8, True, True) == (-127, 127)
    assert golden.qrange(4, False) == (0, 15)
    assert golden.qrange(16, True) == (-32768, 32767)
    assert golden.qrange(1, True) == (-1, 0)


# --- binary GEMMs -----------------------------------------------------------------------

def test_pack_bits_is_little_endian_along_k(rng):
    bits = rng.integers(0, 2, size=(3, 21))
    packed = golden.pack_bits(bits, axis=1)
    assert packed.dtype == np.uint8
    assert packed.tolist() == [ref_pack(row) for row in bits.tolist()]
    assert golden.pack_bits(bits.T, axis=0).T.tolist() == packed.tolist()
    assert golden.unpack_bits(packed, 21, axis=1).tolist() == bits.tolist()
    assert golden.pack_bits(np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])).tolist() == [1, 2]


@pytest.mark.parametrize("k", [1, 7, 8, 9, 63, 64, 65, 130])
def test_xnor_popcount_gemm_equals_gemm_of_signs(rng, k):
    m, n = 5, 6
    a = rng.choice([-1, 1], size=(m, k))
    w = rng.choice([-1, 1], size=(k, n))
    a_packed = golden.pack_signs(a, axis=1)
    w_packed = golden.pack_signs(w, axis=0)
    assert a_packed.tolist() == [ref_pack([int(v > 0) for v in row]) for row in a.tolist()]
    assert w_packed.T.tolist() == [ref_pack([int(v > 0) for v in col]) for col in w.T.tolist()]
    if k % 8:
        # Garbage in the padding bits past k must not change the result.
        garbage = np.uint8(0xFF & ~((1 << (k % 8)) - 1))
        a_packed[:, -1] |= garbage & rng.integers(0, 256, size=m, dtype=np.uint8) | np.uint8(
            1 << 7)
        w_packed[-1, :] |= garbage & rng.integers(0, 256, size=n, dtype=np.uint8) | np.uint8(
            1 << 7)
        assert (a_packed[:, -1] & garbage).any() and (w_packed[-1] & garbage).any()
    got = golden.xnor_popcount_gemm(a_packed, w_packed, k)
    assert got.dtype == np.int32 and got.shape == (m, n)
    expected = ref_gemm(a.tolist(), w.tolist())
    assert got.tolist() == expected
    assert got.tolist() == golden.gemm(a, w).tolist()
    # The same through the popcount formula on the valid bits.
    a_bits, w_bits = (a > 0).tolist(), (w > 0).tolist()
    assert got.tolist() == [[k - 2 * sum(a_bits[i][t] != w_bits[t][j] for t in range(k))
                             for j in range(n)] for i in range(m)]


def test_xnor_popcount_gemm_many_rows(rng):
    k = 300
    a = rng.choice([-1, 1], size=(700, k))
    w = rng.choice([-1, 1], size=(k, 40))
    got = golden.xnor_popcount_gemm(golden.pack_signs(a, 1), golden.pack_signs(w, 0), k)
    assert (got == a @ w).all()


@pytest.mark.parametrize("a_signed", [True, False])
@pytest.mark.parametrize("w_signed", [True, False])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8, 16])
def test_bitplane_gemm_equals_gemm(rng, bits, a_signed, w_signed):
    a_bits = bits
    w_bits = int(rng.integers(1, 9)) if bits != 16 else 16
    a = random_ints(rng, *ref_qrange(a_bits, a_signed), (4, 37), extremes=0.3)
    w = random_ints(rng, *ref_qrange(w_bits, w_signed), (37, 3), extremes=0.3)
    got = golden.bitplane_gemm(a, w, a_bits, w_bits, a_signed, w_signed)
    assert got.dtype == np.int32 and got.shape == (4, 3)
    assert got.tolist() == ref_gemm(a.tolist(), w.tolist())
    assert got.tolist() == golden.gemm(a, w).tolist()


def test_bitplane_gemm_same_width_both_operands(rng):
    for bits in range(1, 9):
        for signed in (True, False):
            a = random_ints(rng, *ref_qrange(bits, signed), (3, 19), extremes=0.5)
            w = random_ints(rng, *ref_qrange(bits, signed), (19, 2), extremes=0.5)
            assert golden.bitplane_gemm(a, w, bits, bits, signed, signed).tolist() == ref_gemm(
                a.tolist(), w.tolist())


def test_bitplane_gemm_wraps_like_gemm(rng):
    a = random_ints(rng, -32768, 32767, (3, 50), extremes=0.8)
    w = random_ints(rng, 0, 65535, (50, 2), extremes=0.8)
    exact = ref_gemm_unwrapped(a.tolist(), w.tolist())
    assert any(not -(1 << 31) <= v < 1 << 31 for row in exact for v in row)
    got = golden.bitplane_gemm(a, w, 16, 16, True, False)
    assert got.tolist() == [[ref_wrap(v, 32) for v in row] for row in exact]
    got = golden.bitplane_gemm(a, w, 16, 16, True, False, acc_bits=20)
    assert got.tolist() == [[ref_wrap(v, 20) for v in row] for row in exact]


def test_bitplane_gemm_k_zero():
    got = golden.bitplane_gemm(np.zeros((2, 0), dtype=int), np.zeros((0, 3), dtype=int), 4, 4)
    assert got.tolist() == [[0, 0, 0], [0, 0, 0]]
