"""Every bad input to the golden model is refused with one fixed sentence.

Each message names the argument, the rule and the offending value; the tests match the
whole message with an anchored regex.
"""

import numpy as np
import pytest

import golden

A = np.zeros((2, 3), dtype=np.int64)
W = np.zeros((3, 5), dtype=np.int64)
X4 = np.zeros((1, 5, 5, 3), dtype=np.int64)
W4 = np.zeros((4, 3, 3, 3), dtype=np.int64)
FLOATS = np.zeros(3)

CONV_Q = dict(x_scale=0.5, x_zero_point=0, w_scale=0.1, w_zero_point=0, y_scale=0.25,
              y_zero_point=0)


def conv_q(**changes):
    return {**CONV_Q, **changes}


def check(exc, pattern, call):
    with pytest.raises(exc, match=pattern):
        call()


# --- bit widths ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^bits must be an integer in 1\.\.16, not 0$", lambda: golden.qrange(0)),
    (r"^bits must be an integer in 1\.\.16, not 17$", lambda: golden.qrange(17)),
    (r"^bits must be an integer in 1\.\.16, not 17$",
     lambda: golden.quantize(FLOATS, 1.0, 0, bits=17)),
    (r"^bits must be an integer in 1\.\.16, not 0$", lambda: golden.choose_qparams(-1, 1, 0)),
    (r"^bits must be an integer in 1\.\.16, not 32$",
     lambda: golden.activation_range("relu", 1.0, 0, bits=32)),
    (r"^out_bits must be an integer in 1\.\.16, not 17$",
     lambda: golden.requantize(0, 1 << 30, 0, 0, 0, 0, out_bits=17)),
    (r"^a_bits must be an integer in 1\.\.16, not 17$",
     lambda: golden.bitplane_gemm(A, W, 17, 8)),
    (r"^w_bits must be an integer in 1\.\.16, not 0$", lambda: golden.bitplane_gemm(A, W, 8, 0)),
    (r"^acc_bits must be an integer in 1\.\.32, not 33$",
     lambda: golden.gemm(A, W, acc_bits=33)),
    (r"^acc_bits must be an integer in 1\.\.32, not 0$", lambda: golden.gemm(A, W, acc_bits=0)),
    (r"^acc_bits must be an integer in 1\.\.32, not 33$",
     lambda: golden.bitplane_gemm(A, W, 8, 8, acc_bits=33)),
    (r"^acc_bits must be an integer in 1\.\.32, not 33$",
     lambda: golden.conv2d(X4, W4, acc_bits=33)),
    (r"^bits must be an integer in 1\.\.64, not 0$", lambda: golden.wrap(5, 0)),
    (r"^bits must be an integer in 1\.\.64, not 65$", lambda: golden.wrap(5, 65)),
])
def test_bit_width_out_of_range(pattern, call):
    check(ValueError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^bits must be an integer, not 8\.0$", lambda: golden.qrange(8.0)),
    (r"^acc_bits must be an integer, not '32'$", lambda: golden.gemm(A, W, acc_bits="32")),
    (r"^out_bits must be an integer, not True$",
     lambda: golden.requantize(0, 1 << 30, 0, 0, 0, 0, out_bits=True)),
])
def test_bit_width_not_an_integer(pattern, call):
    check(TypeError, pattern, call)


# --- scales -------------------------------------------------------------------------------

@pytest.mark.parametrize(("bad", "shown"), [
    (0.0, r"0\.0"), (-1.0, r"-1\.0"), (float("inf"), "inf"), (float("nan"), "nan"),
    (-3, "-3"), (np.array([0.5, -0.25, 0.0]), r"-0\.25"), (np.float32(-2.0), r"-2\.0"),
])
def test_scale_must_be_positive_and_finite(bad, shown):
    axis = 0 if np.ndim(bad) else None
    zp = np.zeros(np.shape(bad), dtype=np.int64)
    pattern = rf"^scale must be positive and finite, not {shown}$"
    check(ValueError, pattern, lambda: golden.quantize(FLOATS, bad, zp, axis=axis))
    check(ValueError, pattern, lambda: golden.dequantize(np.zeros(3, dtype=int), bad, zp,
                                                         axis=axis))
    if np.ndim(bad) == 0:
        check(ValueError, pattern, lambda: golden.activation_range("relu", bad, 0))


@pytest.mark.parametrize(("name", "changes"), [
    ("x_scale", dict(x_scale=0.0)),
    ("y_scale", dict(y_scale=0.0)),
    ("w_scale", dict(w_scale=np.array([0.1, 0.1, 0.0, 0.1]))),
])
def test_conv_scales_must_be_positive(name, changes):
    pattern = rf"^{name} must be positive and finite, not 0\.0$"
    check(ValueError, pattern, lambda: golden.quantized_conv2d(X4, W4, None, **conv_q(**changes)))
    check(ValueError, pattern, lambda: golden.real_multiplier(
        **{"x_scale": 0.5, "w_scale": 0.1, "y_scale": 0.25, **changes}))


@pytest.mark.parametrize(("pattern", "call"), [
    # TFLite holds scales in float32: one that is 0 or inf there is refused, not divided by.
    (r"^scale must be positive and finite in float32, not 1e-50$",
     lambda: golden.activation_range("relu6", 1e-50, 0)),
    (r"^scale must be positive and finite in float32, not 1e\+39$",
     lambda: golden.activation_range("relu6", 1e39, 0)),
    (r"^y_scale must be positive and finite in float32, not 1e-50$",
     lambda: golden.real_multiplier(0.5, 0.1, 1e-50)),
    (r"^x_scale must be positive and finite in float32, not 1e\+39$",
     lambda: golden.real_multiplier(1e39, 0.1, 0.5)),
    (r"^w_scale must be positive and finite in float32, not 1e-50$",
     lambda: golden.quantized_conv2d(X4, W4, None, **conv_q(w_scale=[0.1, 1e-50, 0.1, 0.1]))),
    (r"^scale must be positive and finite in float32, not 1e-50$",
     lambda: golden.quantize(FLOATS.astype(np.float32), 1e-50, 0)),
])
def test_scale_must_survive_float32(pattern, call):
    check(ValueError, pattern, call)


def test_scale_must_be_real():
    check(TypeError, r"^scale must be a real number or array of them, not 'a'$",
          lambda: golden.quantize(FLOATS, "a", 0))
    check(TypeError, r"^scale must be a real number or array of them, not True$",
          lambda: golden.activation_range("relu", True, 0))


# --- zero points --------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^zero_point must be in -128\.\.127 for 8-bit signed values, not 128$",
     lambda: golden.quantize(FLOATS, 1.0, 128)),
    (r"^zero_point must be in 0\.\.255 for 8-bit unsigned values, not -1$",
     lambda: golden.quantize(FLOATS, 1.0, -1, signed=False)),
    (r"^zero_point must be in -8\.\.7 for 4-bit signed values, not 8$",
     lambda: golden.quantize(np.zeros((2, 3)), np.ones(3), np.array([0, 8, 0]), bits=4, axis=1)),
    (r"^zero_point must be an integer in -128\.\.127, not 200$",
     lambda: golden.activation_range("relu", 1.0, 200)),
    (r"^zero_point must be an integer in 0\.\.15, not -1$",
     lambda: golden.activation_range("relu", 1.0, -1, bits=4, signed=False)),
    (r"^out_zero_point must be an integer in -128\.\.127, not 128$",
     lambda: golden.requantize(0, 1 << 30, 0, 128, -128, 127)),
    (r"^x_zero_point must be in -128\.\.127 for 8-bit signed values, not 128$",
     lambda: golden.quantized_conv2d(X4, W4, None, **conv_q(x_zero_point=128))),
    (r"^y_zero_point must be in -128\.\.127 for 8-bit signed values, not -129$",
     lambda: golden.quantized_conv2d(X4, W4, None, **conv_q(y_zero_point=-129))),
    (r"^w_zero_point must be in -128\.\.127 for 8-bit signed values, not 300$",
     lambda: golden.quantized_fully_connected(
         A, W.T, None, **conv_q(w_zero_point=np.array([0, 0, 0, 300, 0])))),
    (r"^a_zero_point must hold integers in -32768\.\.65535, not 70000$",
     lambda: golden.gemm(A, W, a_zero_point=70000)),
    (r"^w_zero_point must hold integers in -32768\.\.65535, not -32769$",
     lambda: golden.gemm(A, W, w_zero_point=np.array([0, 0, -32769, 0, 0]))),
    (r"^x_zero_point must be an integer in -32768\.\.65535, not -40000$",
     lambda: golden.conv2d(X4, W4, x_zero_point=-40000)),
])
def test_zero_point_out_of_range(pattern, call):
    check(ValueError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^zero_point must be an integer or integer array, not 1\.5$",
     lambda: golden.quantize(FLOATS, 1.0, 1.5)),
    (r"^zero_point must be an integer or integer array, not 0\.0$",
     lambda: golden.dequantize(np.zeros(3, dtype=int), 1.0, 0.0)),
    (r"^zero_point must be an integer, not 1\.5$",
     lambda: golden.activation_range("relu", 1.0, 1.5)),
    (r"^a_zero_point must be an integer array, not an array of dtype float64$",
     lambda: golden.gemm(A, W, a_zero_point=1.0)),
])
def test_zero_point_not_an_integer(pattern, call):
    check(TypeError, pattern, call)


# --- shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^a and w must agree on K, not a of shape \(2, 3\) and w of shape \(4, 5\)$",
     lambda: golden.gemm(A, np.zeros((4, 5), dtype=int))),
    (r"^a and w must agree on K, not a of shape \(2, 3\) and w of shape \(2, 5\)$",
     lambda: golden.bitplane_gemm(A, np.zeros((2, 5), dtype=int), 8, 8)),
    (r"^a must have 2 dimensions, not shape \(3,\)$",
     lambda: golden.gemm(np.zeros(3, dtype=int), W)),
    (r"^w must have 2 dimensions, not shape \(1, 3, 5\)$",
     lambda: golden.gemm(A, W[None])),
    (r"^bias must have one entry per column \(5\), not shape \(4,\)$",
     lambda: golden.gemm(A, W, bias=np.zeros(4, dtype=int))),
    (r"^bias must have 1 dimensions, not shape \(1, 5\)$",
     lambda: golden.gemm(A, W, bias=np.zeros((1, 5), dtype=int))),
    (r"^bias must hold integers in -128\.\.127, not 128$",
     lambda: golden.gemm(A, W, bias=np.array([0, 0, 128, 0, 0]), acc_bits=8)),
    (r"^bias must have one entry per column \(4\), not shape \(3,\)$",
     lambda: golden.quantized_conv2d(X4, W4, np.zeros(3, dtype=np.int32), **CONV_Q)),
    (r"^w_zero_point must be a scalar or have one entry per column \(5\), not shape \(4,\)$",
     lambda: golden.gemm(A, W, w_zero_point=np.zeros(4, dtype=int))),
    (r"^w_zero_point must have 0 or 1 dimensions, not shape \(1, 5\)$",
     lambda: golden.gemm(A, W, w_zero_point=np.zeros((1, 5), dtype=int))),
    (r"^a_zero_point must have 0 dimensions, not shape \(1,\)$",
     lambda: golden.gemm(A, W, a_zero_point=np.array([1]))),
    (r"^m0 must be a scalar or have one entry per column \(3\), not shape \(2,\)$",
     lambda: golden.requantize(A, np.full(2, 1 << 30), 0, 0, -128, 127)),
    (r"^shift must be a scalar or have one entry per column \(3\), not shape \(1, 3\)$",
     lambda: golden.requantize(A, 1 << 30, np.zeros((1, 3), dtype=int), 0, -128, 127)),
    (r"^m0 must be a scalar when acc is a scalar, not shape \(3,\)$",
     lambda: golden.requantize(7, np.full(3, 1 << 30), 0, 0, -128, 127)),
    (r"^m0 must be a scalar or have one entry per column \(3\), not shape \(2,\)$",
     lambda: golden.requantize(np.zeros(3, dtype=int), np.full(2, 1 << 30), 0, 0, -128, 127)),
    (r"^scale must have one entry per channel \(3 along axis 1\), not shape \(2,\)$",
     lambda: golden.quantize(np.zeros((2, 3)), np.ones(2), np.zeros(3, dtype=int), axis=1)),
    (r"^zero_point must have one entry per channel \(2 along axis 0\), not shape \(3,\)$",
     lambda: golden.quantize(np.zeros((2, 3)), np.ones(2), np.zeros(3, dtype=int), axis=0)),
    (r"^scale must be a scalar when axis is None, not shape \(3,\)$",
     lambda: golden.quantize(np.zeros((2, 3)), np.ones(3), 0)),
    (r"^zero_point must be a scalar when axis is None, not shape \(3,\)$",
     lambda: golden.dequantize(np.zeros((2, 3), dtype=int), 1.0, np.zeros(3, dtype=int))),
    (r"^scale must be a scalar when axis is None, not shape \(3,\)$",
     lambda: golden.dequantize(np.zeros((2, 3), dtype=int), np.ones(3), 0)),
    (r"^scale must have one entry per channel \(2 along axis 0\), not shape \(3,\)$",
     lambda: golden.dequantize(np.zeros((2, 3), dtype=int), np.ones(3), np.zeros(2, dtype=int),
                               axis=0)),
    (r"^axis must be an integer in -2\.\.1, not 2$",
     lambda: golden.quantize(np.zeros((2, 3)), np.ones(3), np.zeros(3, dtype=int), axis=2)),
    (r"^min and max must have the same shape, not \(2,\) and \(3,\)$",
     lambda: golden.choose_qparams(np.zeros(2), np.ones(3))),
    (r"^w_scale must be a scalar or have one entry per output channel \(4\), not shape "
     r"\(3,\)$",
     lambda: golden.quantized_conv2d(X4, W4, None, **conv_q(w_scale=np.ones(3)))),
    (r"^w must have x's 3 input channels \(OHWI\), not shape \(4, 3, 3, 2\)$",
     lambda: golden.conv2d(X4, np.zeros((4, 3, 3, 2), dtype=int))),
    (r"^x must have 4 dimensions, not shape \(5, 5, 3\)$",
     lambda: golden.conv2d(X4[0], W4)),
    (r"^x must be NHWC with 4 dimensions, not shape \(5, 5, 3\)$",
     lambda: golden.im2col(X4[0], 3)),
    (r"^w must be \(out, 3\) to match x, not shape \(5, 4\)$",
     lambda: golden.quantized_fully_connected(A, np.zeros((5, 4), dtype=int), None, **CONV_Q)),
    (r"^x must have 2 dimensions, not shape \(1, 5, 5, 3\)$",
     lambda: golden.quantized_fully_connected(X4, W.T, None, **CONV_Q)),
])
def test_mismatched_shapes(pattern, call):
    check(ValueError, pattern, call)


# --- integer data ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^a must be an integer array, not an array of dtype float64$",
     lambda: golden.gemm(A.astype(float), W)),
    (r"^w must be an integer array, not an array of dtype float32$",
     lambda: golden.gemm(A, W.astype(np.float32))),
    (r"^a must be an integer array, not an array of dtype bool$",
     lambda: golden.gemm(A.astype(bool), W)),
    (r"^bias must be an integer array, not an array of dtype float64$",
     lambda: golden.gemm(A, W, bias=np.zeros(5))),
    (r"^a must be an integer array, not an array of dtype float64$",
     lambda: golden.saturating_rounding_doubling_high_mul(1.5, 2)),
    (r"^b must be an integer array, not an array of dtype float64$",
     lambda: golden.saturating_rounding_doubling_high_mul(2, 1.0)),
    (r"^x must be an integer array, not an array of dtype float64$",
     lambda: golden.rounding_divide_by_pot(1.0, 1)),
    (r"^exponent must be an integer array, not an array of dtype float64$",
     lambda: golden.rounding_divide_by_pot(1, 1.0)),
    (r"^m0 must be an integer array, not an array of dtype float64$",
     lambda: golden.multiply_by_quantized_multiplier(1, 0.5, 0)),
    (r"^shift must be an integer array, not an array of dtype float64$",
     lambda: golden.multiply_by_quantized_multiplier(1, 1 << 30, -1.0)),
    (r"^acc must be an integer array, not an array of dtype float64$",
     lambda: golden.requantize(A.astype(float), 1 << 30, 0, 0, -128, 127)),
    (r"^x must be an integer array, not an array of dtype float64$",
     lambda: golden.conv2d(X4.astype(float), W4)),
    (r"^w must be an integer array, not an array of dtype float64$",
     lambda: golden.quantized_conv2d(X4, W4.astype(float), None, **CONV_Q)),
    (r"^x must be an integer array, not an array of dtype float64$",
     lambda: golden.im2col(X4.astype(float), 3)),
    (r"^a must be an integer array, not an array of dtype float64$",
     lambda: golden.bitplane_gemm(A.astype(float), W, 8, 8)),
    (r"^bits must be an integer array, not an array of dtype float64$",
     lambda: golden.pack_bits(np.ones(8))),
    (r"^x must be an integer array, not an array of dtype float64$",
     lambda: golden.pack_signs(np.ones(8))),
    (r"^q must be an integer array, not an array of dtype float64$",
     lambda: golden.dequantize(FLOATS, 1.0, 0)),
    (r"^x must be an integer array, not an array of dtype float64$",
     lambda: golden.wrap(np.array([1.5]), 8)),
    (r"^x must be a floating-point array, not an array of dtype int64$",
     lambda: golden.quantize(np.zeros(3, dtype=np.int64), 1.0, 0)),
    (r"^a_packed must be a uint8 array of packed bits, not an array of dtype int8$",
     lambda: golden.xnor_popcount_gemm(np.zeros((2, 1), dtype=np.int8),
                                       np.zeros((1, 2), dtype=np.uint8), 8)),
    (r"^packed must be a uint8 array of packed bits, not an array of dtype int64$",
     lambda: golden.unpack_bits(np.zeros(2, dtype=np.int64), 8)),
    (r"^real multiplier must be a real number or array of them, not 'a'$",
     lambda: golden.quantize_multiplier("a")),
    (r"^min must be a real number or array of them, not None$",
     lambda: golden.choose_qparams(None, 1.0)),
])
def test_float_where_integers_are_required(pattern, call):
    check(TypeError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^a must hold integers in -32768\.\.65535, not 65536$",
     lambda: golden.gemm(np.array([[65536]]), np.array([[1]]))),
    (r"^w must hold integers in -32768\.\.65535, not -32769$",
     lambda: golden.gemm(np.array([[1]]), np.array([[-32769]]))),
    (r"^x must hold integers in -128\.\.127, not 128$",
     lambda: golden.quantized_conv2d(X4 + 128, W4, None, **CONV_Q)),
    (r"^a must hold integers in -8\.\.7, not 8$",
     lambda: golden.bitplane_gemm(A + 8, W, 4, 4)),
    (r"^w must hold integers in 0\.\.3, not -1$",
     lambda: golden.bitplane_gemm(A, W - 1, 4, 2, w_signed=False)),
    (r"^a must hold integers in -2147483648\.\.2147483647, not 2147483648$",
     lambda: golden.saturating_rounding_doubling_high_mul(1 << 31, 1)),
    (r"^m0 must hold integers in -2147483648\.\.2147483647, not -2147483649$",
     lambda: golden.multiply_by_quantized_multiplier(1, -(1 << 31) - 1, 0)),
    (r"^x must hold integers in -2147483648\.\.2147483647, not 2147483648$",
     lambda: golden.multiply_by_quantized_multiplier(1 << 31, 1 << 30, 0)),
    (r"^acc must hold integers in -2147483648\.\.2147483647, not 2147483648$",
     lambda: golden.requantize(np.array([1 << 31]), 1 << 30, 0, 0, -128, 127)),
])
def test_integers_out_of_range(pattern, call):
    check(ValueError, pattern, call)


# --- choices ------------------------------------------------------------------------------

ACTIVATIONS = r"'linear', 'relu', 'relu6', 'relu_n1_to_1'"


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^padding must be one of 'VALID', 'SAME', not 'same'$",
     lambda: golden.conv_output_shape(5, 5, 3, 1, "same")),
    (r"^padding must be one of 'VALID', 'SAME', not 'FULL'$",
     lambda: golden.conv2d(X4, W4, padding="FULL")),
    (r"^padding must be one of 'VALID', 'SAME', not None$",
     lambda: golden.im2col(X4, 3, padding=None)),
    (rf"^activation must be one of {ACTIVATIONS}, not 'relu8'$",
     lambda: golden.activation_range("relu8", 1.0, 0)),
    (rf"^activation must be one of {ACTIVATIONS}, not 'tanh'$",
     lambda: golden.quantized_conv2d(X4, W4, None, activation="tanh", **CONV_Q)),
    (rf"^activation must be one of {ACTIVATIONS}, not 'RELU'$",
     lambda: golden.quantized_fully_connected(A, W.T, None, activation="RELU", **CONV_Q)),
])
def test_bad_choice(pattern, call):
    check(ValueError, pattern, call)


# --- convolution geometry -------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^stride must be an integer in 1\.\., not 0$",
     lambda: golden.conv_output_shape(5, 5, 3, 0)),
    (r"^dilation must be an integer in 1\.\., not -1$",
     lambda: golden.conv2d(X4, W4, dilation=(1, -1))),
    (r"^kernel must be an integer in 1\.\., not 0$",
     lambda: golden.im2col(X4, (0, 3))),
    (r"^height must be an integer in 1\.\., not 0$",
     lambda: golden.conv_output_shape(0, 5, 3)),
    (r"^filters must be an integer in 1\.\., not 0$",
     lambda: golden.conv_gemm_shape(1, 5, 5, 3, 3, 0)),
    (r"^pad_value must fit x's dtype int8 \(-128\.\.127\), not 128$",
     lambda: golden.im2col(X4.astype(np.int8), 3, padding="SAME", pad_value=128)),
])
def test_bad_geometry(pattern, call):
    check(ValueError, pattern, call)


def test_kernel_must_be_an_integer_or_a_pair():
    check(TypeError, r"^kernel must be a positive integer or a pair of them, not \(1, 2, 3\)$",
          lambda: golden.conv_output_shape(5, 5, (1, 2, 3)))
    check(TypeError, r"^stride must be a positive integer or a pair of them, not 1\.0$",
          lambda: golden.conv_output_shape(5, 5, 3, 1.0))


# --- quantization parameters -----------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^min must not exceed max, not 1\.0 > 0\.5$", lambda: golden.choose_qparams(1.0, 0.5)),
    (r"^min and max must span a range with a positive float64 scale, not \[-5e-324, 0\.0\]$",
     lambda: golden.choose_qparams(-5e-324, 0.0)),
    (r"^min and max must span a range with a positive float64 scale, not \[0\.0, 1e-322\]$",
     lambda: golden.choose_qparams(np.zeros(2), np.array([1.0, 1e-322]), symmetric=True)),
    (r"^min must not exceed max, not 2\.0 > -1\.0$",
     lambda: golden.choose_qparams(np.array([0.0, 2.0]), np.array([1.0, -1.0]))),
    (r"^min must be finite, not nan$", lambda: golden.choose_qparams(float("nan"), 1.0)),
    (r"^max must be finite, not inf$", lambda: golden.choose_qparams(0.0, float("inf"))),
    (r"^symmetric quantization needs signed=True, not signed=False$",
     lambda: golden.choose_qparams(-1.0, 1.0, signed=False, symmetric=True)),
    (r"^symmetric quantization needs bits >= 2, not 1$",
     lambda: golden.choose_qparams(-1.0, 1.0, bits=1, symmetric=True)),
    (r"^bits must leave at least two codes, not 1 with narrow_range=True$",
     lambda: golden.choose_qparams(-1.0, 1.0, bits=1, narrow_range=True)),
])
def test_bad_quantization_range(pattern, call):
    check(ValueError, pattern, call)


# --- fixed point ----------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^shift must hold integers in -31\.\.30, not 31$",
     lambda: golden.multiply_by_quantized_multiplier(1, 1 << 30, 31)),
    (r"^shift must hold integers in -31\.\.30, not -32$",
     lambda: golden.multiply_by_quantized_multiplier(1, 1 << 30, np.array([0, -32]))),
    (r"^shift must hold integers in -31\.\.30, not 40$",
     lambda: golden.requantize(A, 1 << 30, np.array([0, 40, 0]), 0, -128, 127)),
    (r"^exponent must hold integers in 0\.\.31, not 32$",
     lambda: golden.rounding_divide_by_pot(1, 32)),
    (r"^exponent must hold integers in 0\.\.31, not -1$",
     lambda: golden.rounding_divide_by_pot(np.array([1, 2]), np.array([3, -1]))),
    (r"^act_min must not exceed act_max, not 5 > 3$",
     lambda: golden.requantize(A, 1 << 30, 0, 0, 5, 3)),
    (r"^act_min must be an integer in -128\.\.127, not -129$",
     lambda: golden.requantize(A, 1 << 30, 0, 0, -129, 3)),
    (r"^act_max must be an integer in 0\.\.255, not 256$",
     lambda: golden.requantize(A, 1 << 30, 0, 0, 0, 256, out_signed=False)),
    (r"^real multiplier must be finite, not inf$",
     lambda: golden.quantize_multiplier(float("inf"))),
    (r"^real multiplier must be finite, not nan$",
     lambda: golden.quantize_multiplier(np.array([0.5, float("nan")]))),
])
def test_bad_fixed_point_argument(pattern, call):
    check(ValueError, pattern, call)


# --- binary -------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "call"), [
    (r"^x must hold only -1 and \+1, not 0$",
     lambda: golden.pack_signs(np.array([1, -1, 0, 1]))),
    (r"^x must hold integers in -1\.\.1, not 2$",
     lambda: golden.pack_signs(np.array([1, 2]))),
    (r"^bits must hold integers in 0\.\.1, not 2$",
     lambda: golden.pack_bits(np.array([0, 1, 2]))),
    (r"^k = 9 needs 2 packed bytes: a_packed must be \(M, 2\) and w_packed \(2, N\), "
     r"not \(2, 2\) and \(1, 3\)$",
     lambda: golden.xnor_popcount_gemm(np.zeros((2, 2), dtype=np.uint8),
                                       np.zeros((1, 3), dtype=np.uint8), 9)),
    (r"^k = 8 needs 1 packed bytes: a_packed must be \(M, 1\) and w_packed \(1, N\), "
     r"not \(2, 2\) and \(2, 3\)$",
     lambda: golden.xnor_popcount_gemm(np.zeros((2, 2), dtype=np.uint8),
                                       np.zeros((2, 3), dtype=np.uint8), 8)),
    (r"^k must be an integer in 1\.\., not 0$",
     lambda: golden.xnor_popcount_gemm(np.zeros((2, 1), dtype=np.uint8),
                                       np.zeros((1, 3), dtype=np.uint8), 0)),
    (r"^a_packed and w_packed must be 2-D, not shapes \(2,\) and \(1, 3\)$",
     lambda: golden.xnor_popcount_gemm(np.zeros(2, dtype=np.uint8),
                                       np.zeros((1, 3), dtype=np.uint8), 8)),
    (r"^count must be an integer in 0\.\., not -1$",
     lambda: golden.unpack_bits(np.zeros(2, dtype=np.uint8), -1)),
])
def test_bad_binary_argument(pattern, call):
    check(ValueError, pattern, call)
