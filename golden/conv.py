"""Convolution through im2col, depthwise convolution, and TFLite's int8 conv and FC kernels."""

import numbers

import numpy as np

from ._validate import check_choice, check_int, check_int_array, check_zero_point
from .fixedpoint import (
    activation_range,
    quantize_multiplier,
    real_multiplier,
    requantize,
    requantize_fp64,
    wrap,
)
from .gemm import OPERAND_MAX, OPERAND_MIN, gemm

__all__ = [
    "conv_output_shape", "conv_gemm_shape", "im2col", "conv2d", "quantized_conv2d",
    "depthwise_conv2d", "quantized_depthwise_conv2d", "quantized_fully_connected",
    "quantized_fully_connected_two_step",
]

_PADDINGS = ("VALID", "SAME")


def _pair(name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be a positive integer or a pair of them, not {value!r}")
    return tuple(check_int(name, v, 1) for v in value)


def _axis_geometry(size, kernel, stride, dilation, padding):
    """Output size and (before, after) padding along one axis, by TensorFlow's rule."""
    span = (kernel - 1) * dilation + 1
    if padding == "VALID":
        out = (size - span) // stride + 1 if size >= span else 0
        return out, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2


def conv_output_shape(height, width, kernel, stride=1, padding="VALID", dilation=1):
    """``(out_h, out_w, (pad_top, pad_bottom), (pad_left, pad_right))`` of a 2-D convolution.

    TensorFlow's rule: ``VALID`` keeps only windows inside the input; ``SAME`` gives
    ``ceil(size / stride)`` outputs and pads ``max((out - 1) * stride + span - size, 0)``
    in total, the smaller half before and the larger half after.
    """
    height = check_int("height", height, 1)
    width = check_int("width", width, 1)
    kh, kw = _pair("kernel", kernel)
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    check_choice("padding", padding, _PADDINGS)
    oh, pt, pb = _axis_geometry(height, kh, sh, dh, padding)
    ow, pl, pr = _axis_geometry(width, kw, sw, dw, padding)
    return oh, ow, (pt, pb), (pl, pr)


def conv_gemm_shape(batch, height, width, channels, kernel, filters, stride=1,
                    padding="VALID", dilation=1):
    """``(M, K, N)`` of the GEMM that :func:`conv2d` performs: pixels x taps x filters."""
    oh, ow, _, _ = conv_output_shape(height, width, kernel, stride, padding, dilation)
    kh, kw = _pair("kernel", kernel)
    return (check_int("batch", batch, 1) * oh * ow,
            kh * kw * check_int("channels", channels, 1),
            check_int("filters", filters, 1))


def im2col(x, kernel, stride=1, padding="VALID", pad_value=0, dilation=1):
    """Unfold an NHWC tensor into the patch matrix of a convolution.

    Row ``(n * out_h + i) * out_w + j`` holds the window of output pixel ``(n, i, j)``
    flattened in ``(kh, kw, c)`` order, the order of an OHWI filter's ``(H, W, I)`` axes, so
    that ``im2col(x, ...) @ w.reshape(O, -1).T`` is the convolution. Padded taps hold
    ``pad_value`` (the input zero point makes them contribute nothing).

    Returns
    -------
    numpy.ndarray, shape (N * out_h * out_w, kh * kw * C), dtype of ``x``
    """
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"x must be an integer array, not an array of dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC with 4 dimensions, not shape {x.shape}")
    n, h, w, c = x.shape
    kh, kw = _pair("kernel", kernel)
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    oh, ow, (pt, pb), (pl, pr) = conv_output_shape(h, w, (kh, kw), (sh, sw), padding, (dh, dw))
    pad_value = check_int("pad_value", pad_value)
    info = np.iinfo(x.dtype)
    if not info.min <= pad_value <= info.max:
        raise ValueError(f"pad_value must fit x's dtype {x.dtype} ({info.min}..{info.max}), "
                         f"not {pad_value}")
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    # Gather taps (kh, kw) of every output pixel with strided, dilated slices.
    taps = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            taps[:, :, :, i, j, :] = padded[:, r0:r0 + (oh - 1) * sh + 1:sh,
                                            c0:c0 + (ow - 1) * sw + 1:sw, :]
    return taps.reshape(n * oh * ow, kh * kw * c)


def conv2d(x, w, bias=None, x_zero_point=0, w_zero_point=0, stride=1, padding="VALID",
           dilation=1, acc_bits=32):
    """Integer 2-D convolution: NHWC input, OHWI filters, int32 accumulators.

    ``im2col`` with padded taps equal to ``x_zero_point``, then :func:`golden.gemm.gemm`
    (same wrap-around rule). ``w_zero_point`` may be per output channel.

    Returns
    -------
    numpy.ndarray of int32, shape (N, out_h, out_w, O)
    """
    x = check_int_array("x", x, OPERAND_MIN, OPERAND_MAX, ndim=4)
    w = check_int_array("w", w, OPERAND_MIN, OPERAND_MAX, ndim=4)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"w must have x's {x.shape[3]} input channels (OHWI), not shape "
                         f"{w.shape}")
    x_zero_point = check_int("x_zero_point", x_zero_point, OPERAND_MIN, OPERAND_MAX)
    o, kh, kw, _ = w.shape
    n, h, wd, _ = x.shape
    oh, ow, _, _ = conv_output_shape(h, wd, (kh, kw), stride, padding, dilation)
    cols = im2col(x, (kh, kw), stride, padding, x_zero_point, dilation)
    acc = gemm(cols, w.reshape(o, -1).T, x_zero_point, w_zero_point, bias, acc_bits)
    return acc.reshape(n, oh, ow, o)


def _output_parameters(acc, x_scale, w_scale, y_scale, y_zero_point, activation):
    """Per-channel real multipliers, the output zero point and the clamp bounds of an int8
    layer, as TFLite derives them: ``(multiplier, y_zero_point, act_min, act_max)``."""
    cout = acc.shape[-1]
    w_scale = np.asarray(w_scale)
    if w_scale.ndim not in (0, 1) or (w_scale.ndim == 1 and w_scale.shape[0] != cout):
        raise ValueError(f"w_scale must be a scalar or have one entry per output channel "
                         f"({cout}), not shape {w_scale.shape}")
    y_zero_point = int(check_zero_point("y_zero_point", y_zero_point, 8, True))
    multiplier = np.broadcast_to(real_multiplier(x_scale, w_scale, y_scale), (cout,))
    act_min, act_max = activation_range(activation, float(np.float32(y_scale)), y_zero_point)
    return multiplier, y_zero_point, act_min, act_max


def _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation):
    """Requantization with gemmlowp's two-step rounding (CONV_2D, DEPTHWISE_CONV_2D)."""
    multiplier, y_zero_point, act_min, act_max = _output_parameters(
        acc, x_scale, w_scale, y_scale, y_zero_point, activation)
    m0, shift = quantize_multiplier(multiplier)
    return requantize(acc, m0, shift, y_zero_point, act_min, act_max, out_bits=8)


def _check_int8_operands(x, w, x_zero_point, w_zero_point, x_ndim, w_ndim):
    x = check_int_array("x", x, -128, 127, ndim=x_ndim)
    w = check_int_array("w", w, -128, 127, ndim=w_ndim)
    x_zero_point = int(check_zero_point("x_zero_point", x_zero_point, 8, True))
    w_zero_point = check_zero_point("w_zero_point", w_zero_point, 8, True)
    return x, w, x_zero_point, w_zero_point


def quantized_conv2d(x, w, bias, *, x_scale, x_zero_point, w_scale, w_zero_point, y_scale,
                     y_zero_point, stride=1, padding="VALID", activation="linear", dilation=1):
    """TFLite's int8 ``CONV_2D`` (reference kernel), bit for bit.

    Scales are TFLite's float32 scales; the per-channel multiplier is
    ``double(x_scale) * double(w_scale[c]) / double(y_scale)`` split by
    :func:`golden.fixedpoint.quantize_multiplier`; the clamp comes from
    :func:`golden.fixedpoint.activation_range` on ``y_scale``.

    Parameters
    ----------
    x : int8 array (N, H, W, I)
    w : int8 array (O, KH, KW, I)
    bias : int32 array (O,) or None
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int in -128..127
    w_scale : float or array (O,)
    w_zero_point : int or array (O,), in -128..127 (TFLite uses 0)
    stride, dilation : int or (int, int)
    padding : "VALID" or "SAME"
    activation : "linear", "relu", "relu6" or "relu_n1_to_1"

    Returns
    -------
    numpy.ndarray of int8, shape (N, out_h, out_w, O)
    """
    x, w, x_zero_point, w_zero_point = _check_int8_operands(x, w, x_zero_point, w_zero_point,
                                                            4, 4)
    check_choice("activation", activation, ("linear", "relu", "relu6", "relu_n1_to_1"))
    acc = conv2d(x, w, bias, x_zero_point, w_zero_point, stride, padding, dilation)
    return _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation)


def depthwise_conv2d(x, w, bias=None, x_zero_point=0, stride=1, padding="VALID", dilation=1,
                     acc_bits=32):
    """Integer depthwise 2-D convolution: NHWC input, ``(1, KH, KW, C * m)`` filters.

    Output channel ``c * m + j`` (``m`` the depth multiplier, ``C * m / C``) filters input
    channel ``c`` alone: ``acc[n, i, j, o] = sum_{kh, kw} (x[n, i*sh + kh*dh - pt,
    j*sw + kw*dw - pl, o // m] - x_zp) * w[0, kh, kw, o] + bias[o]``, TFLite's
    ``DepthwiseConvPerChannel``. Taps in the padding are skipped there; here they hold
    ``x_zero_point`` and so add nothing, which is the same sum. The accumulator wraps at
    ``acc_bits`` like :func:`golden.gemm.gemm`'s. Weights are symmetric (zero point 0).

    Returns
    -------
    numpy.ndarray of int32, shape (N, out_h, out_w, C * m)
    """
    x = check_int_array("x", x, OPERAND_MIN, OPERAND_MAX, ndim=4)
    w = check_int_array("w", w, OPERAND_MIN, OPERAND_MAX, ndim=4)
    n, h, wd, c = x.shape
    if w.shape[0] != 1 or w.shape[3] == 0 or w.shape[3] % c:
        raise ValueError(f"w must be (1, KH, KW, {c} * depth multiplier) for x's {c} channels, "
                         f"not shape {w.shape}")
    multiplier = w.shape[3] // c
    x_zero_point = check_int("x_zero_point", x_zero_point, OPERAND_MIN, OPERAND_MAX)
    acc_bits = check_int("acc_bits", acc_bits, 1, 32)
    _, kh, kw, cout = w.shape
    sh, sw = _pair("stride", stride)
    dh, dw = _pair("dilation", dilation)
    oh, ow, (pt, pb), (pl, pr) = conv_output_shape(h, wd, (kh, kw), (sh, sw), padding, (dh, dw))
    centred = np.pad(x - x_zero_point, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    if multiplier > 1:
        centred = np.repeat(centred, multiplier, axis=3)
    acc = np.zeros((n, oh, ow, cout), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            acc += centred[:, r0:r0 + (oh - 1) * sh + 1:sh, c0:c0 + (ow - 1) * sw + 1:sw, :] \
                * w[0, i, j, :]
    if bias is not None:
        bias = check_int_array("bias", bias, -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1,
                               ndim=1)
        if bias.shape[0] != cout:
            raise ValueError(f"bias must have one entry per output channel ({cout}), not shape "
                             f"{bias.shape}")
        acc += bias
    return wrap(acc, acc_bits).astype(np.int32)


def quantized_depthwise_conv2d(x, w, bias, *, x_scale, x_zero_point, w_scale, y_scale,
                               y_zero_point, stride=1, padding="VALID", activation="linear",
                               dilation=1):
    """TFLite's int8 ``DEPTHWISE_CONV_2D`` (reference kernel), bit for bit.

    :func:`depthwise_conv2d`'s int32 accumulators, then the output stage of
    :func:`quantized_conv2d`: per output channel ``QuantizeMultiplier(double(x_scale) *
    double(w_scale[c]) / double(y_scale))`` and gemmlowp's two-step rounding, the output zero
    point, the fused activation's clamp. Weights are symmetric (TFLite requires zero points
    of 0), per tensor or per output channel (the last axis of ``w``).

    Parameters
    ----------
    x : int8 array (N, H, W, C)
    w : int8 array (1, KH, KW, C * depth_multiplier)
    bias : int32 array (C * depth_multiplier,) or None
    x_scale, y_scale : float
    x_zero_point, y_zero_point : int in -128..127
    w_scale : float or array (C * depth_multiplier,)
    stride, dilation : int or (int, int)
    padding : "VALID" or "SAME"
    activation : "linear", "relu", "relu6" or "relu_n1_to_1"

    Returns
    -------
    numpy.ndarray of int8, shape (N, out_h, out_w, C * depth_multiplier)
    """
    x, w, x_zero_point, _ = _check_int8_operands(x, w, x_zero_point, 0, 4, 4)
    check_choice("activation", activation, ("linear", "relu", "relu6", "relu_n1_to_1"))
    acc = depthwise_conv2d(x, w, bias, x_zero_point, stride, padding, dilation)
    return _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation)


def _fully_connected_acc(x, w, bias, x_zero_point, w_zero_point, activation):
    x, w, x_zero_point, w_zero_point = _check_int8_operands(x, w, x_zero_point, w_zero_point,
                                                            2, 2)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w must be (out, {x.shape[1]}) to match x, not shape {w.shape}")
    check_choice("activation", activation, ("linear", "relu", "relu6", "relu_n1_to_1"))
    return gemm(x, w.T, x_zero_point, w_zero_point, bias)


def quantized_fully_connected(x, w, bias, *, x_scale, x_zero_point, w_scale, w_zero_point,
                              y_scale, y_zero_point, activation="linear"):
    """TFLite's int8 ``FULLY_CONNECTED`` (reference kernel of TF >= 2.20), bit for bit.

    The int32 accumulator ``sum_k (x - x_zp) * (w - w_zp) + bias`` is requantized in double
    precision, not with a fixed-point multiplier:
    ``clamp(int32(round(double(acc) * (double(x_scale) * double(w_scale[c]) /
    double(y_scale)))) + y_zp, act_min, act_max)`` (:func:`golden.fixedpoint.requantize_fp64`;
    public: tensorflow/tensorflow issue 119412). CONV_2D and DEPTHWISE_CONV_2D keep
    gemmlowp's two-step rounding; :func:`quantized_fully_connected_two_step` is this layer
    with that rounding (what TFLite's optimized kernels and older versions compute).

    ``x`` is (batch, in) and ``w`` is (out, in), TFLite's layout; ``w_scale`` is per tensor
    or per output channel. A per-tensor ``w_zero_point`` is applied as TFLite does.

    Returns
    -------
    numpy.ndarray of int8, shape (batch, out)
    """
    acc = _fully_connected_acc(x, w, bias, x_zero_point, w_zero_point, activation)
    multiplier, y_zero_point, act_min, act_max = _output_parameters(
        acc, x_scale, w_scale, y_scale, y_zero_point, activation)
    return requantize_fp64(acc, multiplier, y_zero_point, act_min, act_max, out_bits=8)


def quantized_fully_connected_two_step(x, w, bias, *, x_scale, x_zero_point, w_scale,
                                       w_zero_point, y_scale, y_zero_point,
                                       activation="linear"):
    """An int8 fully connected layer with gemmlowp's two-step rounding, as CONV_2D rounds.

    The same accumulators as :func:`quantized_fully_connected`, requantized like
    :func:`quantized_conv2d`: ``QuantizeMultiplier`` of the per-channel real multiplier, then
    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << left, m0), right)``. This
    is a 1x1 convolution bit for bit, and what TFLite's optimized FULLY_CONNECTED kernels
    (and its reference kernel before TF 2.20) compute; it is not the reference kernel of
    today's TFLite, which requantizes in double (:func:`quantized_fully_connected`).

    Returns
    -------
    numpy.ndarray of int8, shape (batch, out)
    """
    acc = _fully_connected_acc(x, w, bias, x_zero_point, w_zero_point, activation)
    return _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation)
