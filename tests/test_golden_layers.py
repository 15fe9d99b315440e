"""Golden layer primitives beyond GEMM and conv: properties, hand-worked cases, bad inputs.

Their bit-exactness against TensorFlow Lite is tests/test_nets_litert.py's job; here each
primitive is checked against an independent description (a composition of already-tested
primitives, a slow loop over the definition, exact rational arithmetic, a real-valued
function) and every bad argument is refused with one anchored message.
"""

import math

import numpy as np
import pytest

import golden

KW = dict(x_scale=0.05, x_zero_point=3, y_scale=0.2, y_zero_point=-5)


def check(exc, pattern, call):
    with pytest.raises(exc, match=pattern):
        call()


# --- depthwise convolution ----------------------------------------------------------------

@pytest.mark.parametrize("trial", range(20))
def test_depthwise_is_one_convolution_per_channel(rng, trial):
    n, h, w, c, m = (int(v) for v in rng.integers(1, 6, 5))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    x = rng.integers(-128, 128, (n, h, w, c))
    wt = rng.integers(-127, 128, (1, kh, kw, c * m))
    bias = rng.integers(-1000, 1000, c * m)
    zp = int(rng.integers(-128, 128))
    got = golden.depthwise_conv2d(x, wt, bias, zp, stride, "SAME", dilation)
    for o in range(c * m):
        filt = wt[0, :, :, o].reshape(1, kh, kw, 1)
        want = golden.conv2d(x[..., o // m:o // m + 1], filt, bias[o:o + 1], zp, 0, stride,
                             "SAME", dilation)
        np.testing.assert_array_equal(got[..., o:o + 1], want)


def test_quantized_depthwise_has_conv_output_stage(rng):
    x = rng.integers(-128, 128, (2, 5, 5, 3)).astype(np.int8)
    w = rng.integers(-127, 128, (1, 3, 3, 3)).astype(np.int8)
    scales = np.array([0.01, 0.02, 0.03])
    got = golden.quantized_depthwise_conv2d(x, w, None, w_scale=scales, padding="SAME",
                                            activation="relu", **KW)
    for c in range(3):
        want = golden.quantized_conv2d(x[..., c:c + 1], w[..., c].reshape(1, 3, 3, 1), None,
                                       w_scale=scales[c], w_zero_point=0, padding="SAME",
                                       activation="relu", **KW)
        np.testing.assert_array_equal(got[..., c:c + 1], want)


# --- fully connected ----------------------------------------------------------------------

def test_fully_connected_roundings_differ_by_at_most_one(rng):
    x = rng.integers(-128, 128, (200, 30)).astype(np.int8)
    w = rng.integers(-127, 128, (12, 30)).astype(np.int8)
    kwargs = dict(x_scale=0.02, x_zero_point=-7, w_scale=rng.uniform(0.001, 0.01, 12),
                  w_zero_point=0, y_scale=0.3, y_zero_point=4)
    double = golden.quantized_fully_connected(x, w, None, **kwargs).astype(int)
    two_step = golden.quantized_fully_connected_two_step(x, w, None, **kwargs).astype(int)
    assert np.max(np.abs(double - two_step)) <= 1


def test_requantize_fp64_is_round_half_away_of_the_real_product():
    acc = np.array([[-3, -1, 1, 3, 5, 1000001]], dtype=np.int32)
    got = golden.requantize_fp64(acc, 0.5, 0, -128, 127)
    assert got.tolist() == [[-2, -1, 1, 2, 3, 127]]
    got = golden.requantize_fp64(acc[:, :2], np.array([0.25, 0.75]), 10, -128, 127)
    assert got.tolist() == [[9, 9]]             # -0.75 -> -1, -0.75 -> -1


def test_requantize_fp64_refuses_bad_multipliers():
    check(ValueError, r"^multiplier must be positive and finite, not -0\.5$",
          lambda: golden.requantize_fp64(np.zeros(2, np.int32), -0.5, 0, -128, 127))
    check(ValueError, r"^multiplier must be a scalar or have one entry per column \(2\), not "
                      r"shape \(3,\)$",
          lambda: golden.requantize_fp64(np.zeros((1, 2), np.int32), np.ones(3), 0, -128, 127))


# --- pooling ------------------------------------------------------------------------------

def _slow_pool(x, f, s, pad_before, out_hw, reduce):
    """Pooling straight from the definition: the taps inside the input, one window at a time."""
    n, h, w, c = x.shape
    out = np.zeros((n,) + out_hw + (c,), dtype=np.int64)
    for b in range(n):
        for i in range(out_hw[0]):
            for j in range(out_hw[1]):
                for ch in range(c):
                    top, left = i * s[0] - pad_before[0], j * s[1] - pad_before[1]
                    taps = [int(x[b, r, q, ch])
                            for r in range(top, top + f[0]) for q in range(left, left + f[1])
                            if 0 <= r < h and 0 <= q < w]
                    out[b, i, j, ch] = reduce(taps)
    return out


def _c_rounded_mean(taps):
    total, count = sum(taps), len(taps)
    numerator = total + count // 2 if total > 0 else total - count // 2
    return int(numerator / count)               # C's division truncates toward zero


@pytest.mark.parametrize("trial", range(20))
def test_pools_match_their_definition(rng, trial):
    n, h, w, c = (int(v) for v in rng.integers(1, 7, 4))
    f = tuple(int(v) for v in rng.integers(1, 4, 2))
    s = tuple(int(v) for v in rng.integers(1, 4, 2))
    x = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
    oh, ow, (pt, _), (pl, _) = golden.conv_output_shape(h, w, f, s, "SAME")
    lo, hi = -100, 90
    got_max = golden.max_pool2d(x, f, s, "SAME", lo, hi)
    want_max = np.clip(_slow_pool(x, f, s, (pt, pl), (oh, ow), max), lo, hi)
    np.testing.assert_array_equal(got_max, want_max)
    got_avg = golden.average_pool2d(x, f, s, "SAME", lo, hi)
    want_avg = np.clip(_slow_pool(x, f, s, (pt, pl), (oh, ow), _c_rounded_mean), lo, hi)
    np.testing.assert_array_equal(got_avg, want_avg)


def test_average_pool_rounds_ties_away_from_zero():
    x = np.array([-1, -2, 3, -1, 1, 2, -1, 0], np.int8).reshape(1, 1, 8, 1)
    got = golden.average_pool2d(x, (1, 2), (1, 2))
    assert got.ravel().tolist() == [-2, 1, 2, -1]       # -1.5, 1, 1.5, -0.5


# --- mean ---------------------------------------------------------------------------------

def test_mean_hand_worked():
    same = dict(x_scale=0.1, x_zero_point=0, y_scale=0.1, y_zero_point=0)
    # (2**30 << 1) // 2 = 2**30, shift 0: SRDHM rounds 1.5 up and -1.5 up (toward +inf).
    x = np.array([[1, 2], [-1, -2]], np.int8)
    assert golden.quantized_mean(x, 1, **same).tolist() == [2, -1]
    # Three elements: m0 = 2**31 // 3, 2/3 rounds to 1.
    assert golden.quantized_mean(np.array([[0, 1, 1]], np.int8), -1, **same).tolist() == [1]
    assert golden.mean_multiplier(0.1, 0.1, 3) == (2 ** 31 // 3, 0)


@pytest.mark.parametrize("trial", range(10))
def test_mean_is_within_one_code_of_the_real_mean(rng, trial):
    shape = tuple(int(v) for v in rng.integers(1, 6, 4))
    x = rng.integers(-128, 128, shape).astype(np.int8)
    axis = tuple(int(a) for a in rng.choice(4, int(rng.integers(1, 5)), replace=False))
    q = dict(x_scale=float(rng.uniform(0.01, 0.1)), x_zero_point=int(rng.integers(-50, 50)),
             y_scale=float(rng.uniform(0.01, 0.1)), y_zero_point=int(rng.integers(-50, 50)))
    got = golden.quantized_mean(x, axis, keep_dims=True, **q)
    real = (x.astype(float) - q["x_zero_point"]).mean(axis=axis, keepdims=True)
    want = real * np.float32(q["x_scale"]) / np.float32(q["y_scale"]) + q["y_zero_point"]
    assert got.shape == want.shape
    assert np.all(np.abs(got - np.clip(want, -128, 127)) <= 1)


# --- softmax ------------------------------------------------------------------------------

def test_exp_on_negative_values_is_exp(rng):
    a = -rng.integers(0, 31 << 26, 2000)                  # Q5.26 values in (-31, 0]
    got = golden.softmax.exp_on_negative_values(a) / 2.0 ** 31
    # gemmlowp's polynomial and constants are good to about 2**-22.
    np.testing.assert_allclose(got, np.exp(a / 2.0 ** 26), rtol=0, atol=2.5e-7)
    assert golden.softmax.exp_on_negative_values(np.array([0]))[0] == 2 ** 31 - 1


def test_one_over_one_plus_x_is_the_reciprocal(rng):
    a = rng.integers(0, 2 ** 31, 2000)
    got = golden.softmax.one_over_one_plus_x_for_x_in_0_1(a) / 2.0 ** 31
    # gemmlowp's Newton-Raphson runs in Q2.29: the result is within two units of 2**-29 of
    # the real reciprocal (measured: at most 1.71 units over 2 * 10**7 random inputs).
    np.testing.assert_allclose(got, 1 / (1 + a / 2.0 ** 31), rtol=0, atol=2 * 2.0 ** -29)


def test_softmax_hand_worked():
    assert golden.quantized_softmax(np.zeros((2, 4), np.int8), x_scale=0.1).tolist() == \
        [[-64] * 4] * 2                                   # 1/4 is 64/256
    assert golden.quantized_softmax(np.zeros((1, 2), np.int8), x_scale=0.1).tolist() == [[0, 0]]
    assert golden.quantized_softmax(np.zeros((1, 1), np.int8), x_scale=0.1).tolist() == [[127]]
    wide = golden.quantized_softmax(np.array([[100, -100, -100]], np.int8), x_scale=0.5)
    assert wide.tolist() == [[127, -128, -128]]


@pytest.mark.parametrize("trial", range(10))
def test_softmax_is_close_to_the_real_one_and_ignores_shifts(rng, trial):
    x = rng.integers(-100, 100, (20, int(rng.integers(2, 30)))).astype(np.int8)
    scale, beta = float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.5, 2))
    got = golden.quantized_softmax(x, x_scale=scale, beta=beta).astype(int)
    z = beta * np.float32(scale) * x.astype(float)
    real = np.exp(z - z.max(axis=1, keepdims=True))
    real /= real.sum(axis=1, keepdims=True)
    assert np.all(np.abs(got - np.clip(real * 256 - 128, -128, 127)) <= 1)
    shifted = golden.quantized_softmax((x.astype(int) + 20).astype(np.int8), x_scale=scale,
                                       beta=beta)
    np.testing.assert_array_equal(shifted, got)


# --- add, requantize, pad, concatenate ----------------------------------------------------

def test_add_with_one_scale_is_exact_integer_addition(rng):
    a = rng.integers(-128, 128, (50, 7)).astype(np.int8)
    b = rng.integers(-128, 128, (1, 7)).astype(np.int8)
    got = golden.quantized_add(a, b, a_scale=0.1, a_zero_point=5, b_scale=0.1, b_zero_point=-3,
                               y_scale=0.1, y_zero_point=2)
    want = np.clip(a.astype(int) - 5 + b.astype(int) + 3 + 2, -128, 127)
    np.testing.assert_array_equal(got, want)


def test_add_is_commutative(rng):
    a = rng.integers(-128, 128, (30, 5)).astype(np.int8)
    b = rng.integers(-128, 128, (30, 5)).astype(np.int8)
    q = dict(a_scale=0.037, a_zero_point=11, b_scale=0.11, b_zero_point=-40, y_scale=0.09,
             y_zero_point=7, activation="relu6")
    swapped = dict(q, a_scale=q["b_scale"], a_zero_point=q["b_zero_point"],
                   b_scale=q["a_scale"], b_zero_point=q["a_zero_point"])
    np.testing.assert_array_equal(golden.quantized_add(a, b, **q),
                                  golden.quantized_add(b, a, **swapped))


def test_requantize_codes_with_one_scale_moves_the_zero_point():
    x = np.array([-128, -1, 0, 127], np.int8)
    got = golden.requantize_codes(x, x_scale=0.5, x_zero_point=-128, y_scale=0.5,
                                  y_zero_point=0, dtype=np.uint8)
    assert got.dtype == np.uint8 and got.tolist() == [0, 127, 128, 255]


def test_requantize_codes_halves_like_two_step_rounding():
    x = np.array([-3, -1, 1, 3], np.int8)
    got = golden.requantize_codes(x, x_scale=0.5, x_zero_point=0, y_scale=1.0, y_zero_point=0)
    # SaturatingRoundingDoublingHighMul(x, 2**30) rounds -1.5 to -1 and 1.5 to 2.
    assert got.tolist() == [-1, 0, 1, 2]
    assert math.isclose(golden.quantize_multiplier(0.5)[0], 2 ** 30)


def test_pad_and_concatenate_are_numpys():
    x = np.arange(6, dtype=np.int8).reshape(1, 2, 3)
    np.testing.assert_array_equal(golden.pad(x, [(0, 0), (1, 0), (0, 2)], -7),
                                  np.pad(x, [(0, 0), (1, 0), (0, 2)], constant_values=-7))
    np.testing.assert_array_equal(golden.concatenate([x, x[:, :1]], 1),
                                  np.concatenate([x, x[:, :1]], 1))


@pytest.mark.parametrize(("exc", "pattern", "call"), [
    (ValueError, r"^w must be \(1, KH, KW, 3 \* depth multiplier\) for x's 3 channels, not "
                 r"shape \(1, 3, 3, 4\)$",
     lambda: golden.depthwise_conv2d(np.zeros((1, 5, 5, 3), int), np.zeros((1, 3, 3, 4), int))),
    (TypeError, r"^x must be an int8, uint8 or int16 array, not an array of dtype int64$",
     lambda: golden.max_pool2d(np.zeros((1, 2, 2, 1), np.int64), 2)),
    (ValueError, r"^filter 3x3 with VALID padding does not fit an input of 2x2$",
     lambda: golden.average_pool2d(np.zeros((1, 2, 2, 1), np.int8), 3)),
    (ValueError, r"^act_min must not exceed act_max, not 5 > 4$",
     lambda: golden.max_pool2d(np.zeros((1, 2, 2, 1), np.int8), 1, act_min=5, act_max=4)),
    (ValueError, r"^axis must be an integer in -2\.\.1, not 2$",
     lambda: golden.quantized_mean(np.zeros((2, 2), np.int8), 2, **KW)),
    (TypeError, r"^x must be an int8 array, not an array of dtype uint8$",
     lambda: golden.quantized_softmax(np.zeros((1, 2), np.uint8), x_scale=0.1)),
    (ValueError, r"^beta \* x_scale must exceed 2\*\*-26 for an int8 softmax, not 1\.0 \* 1e-09$",
     lambda: golden.quantized_softmax(np.zeros((1, 2), np.int8), x_scale=1e-9)),
    (TypeError, r"^b must be an array of int8, not an array of dtype uint8$",
     lambda: golden.quantized_add(np.zeros(2, np.int8), np.zeros(2, np.uint8), a_scale=1,
                                  a_zero_point=0, b_scale=1, b_zero_point=0, y_scale=1,
                                  y_zero_point=0)),
    (ValueError, r"^y_scale must be at least max\(a_scale, b_scale\) / 2\*\*19 for an int8 "
                 r"ADD, not 1e-07$",
     lambda: golden.quantized_add(np.zeros(2, np.int8), np.zeros(2, np.int8), a_scale=1,
                                  a_zero_point=0, b_scale=1, b_zero_point=0, y_scale=1e-7,
                                  y_zero_point=0)),
    (TypeError, r"^dtype must be int8 or uint8, not int16$",
     lambda: golden.requantize_codes(np.zeros(2, np.int8), x_scale=1, x_zero_point=0,
                                     y_scale=1, y_zero_point=0, dtype=np.int16)),
    (ValueError, r"^paddings must be non-negative, not \[\[0, -1\]\]$",
     lambda: golden.pad(np.zeros(3, np.int8), [(0, -1)], 0)),
    (ValueError, r"^pad_value must be an integer in -128\.\.127, not 200$",
     lambda: golden.pad(np.zeros(3, np.int8), [(0, 1)], 200)),
    (ValueError, r"^arrays must agree on every dimension but axis 1, not shapes "
                 r"\[\(1, 2\), \(2, 2\)\]$",
     lambda: golden.concatenate([np.zeros((1, 2)), np.zeros((2, 2))], 1)),
])
def test_bad_arguments(exc, pattern, call):
    check(exc, pattern, call)
