"""Convolution through im2col, and TFLite's int8 CONV_2D and FULLY_CONNECTED kernels."""

import numbers

import numpy as np

from ._validate import check_choice, check_int, check_int_array, check_zero_point
from .fixedpoint import activation_range, quantize_multiplier, real_multiplier, requantize
from .gemm import OPERAND_MAX, OPERAND_MIN, gemm

__all__ = [
    "conv_output_shape", "conv_gemm_shape", "im2col", "conv2d", "quantized_conv2d",
    "quantized_fully_connected",
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


def _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation):
    """Per-channel multipliers, clamp bounds and requantization, as TFLite derives them."""
    cout = acc.shape[-1]
    w_scale = np.asarray(w_scale)
    if w_scale.ndim not in (0, 1) or (w_scale.ndim == 1 and w_scale.shape[0] != cout):
        raise ValueError(f"w_scale must be a scalar or have one entry per output channel "
                         f"({cout}), not shape {w_scale.shape}")
    y_zero_point = int(check_zero_point("y_zero_point", y_zero_point, 8, True))
    multiplier = np.broadcast_to(real_multiplier(x_scale, w_scale, y_scale), (cout,))
    m0, shift = quantize_multiplier(multiplier)
    act_min, act_max = activation_range(activation, float(np.float32(y_scale)), y_zero_point)
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


def quantized_fully_connected(x, w, bias, *, x_scale, x_zero_point, w_scale, w_zero_point,
                              y_scale, y_zero_point, activation="linear"):
    """TFLite's int8 ``FULLY_CONNECTED`` (reference kernel), bit for bit.

    ``x`` is (batch, in) and ``w`` is (out, in), TFLite's layout; scales and multipliers as
    in :func:`quantized_conv2d` (per-channel ``w_scale`` allowed).

    Returns
    -------
    numpy.ndarray of int8, shape (batch, out)
    """
    x, w, x_zero_point, w_zero_point = _check_int8_operands(x, w, x_zero_point, w_zero_point,
                                                            2, 2)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w must be (out, {x.shape[1]}) to match x, not shape {w.shape}")
    check_choice("activation", activation, ("linear", "relu", "relu6", "relu_n1_to_1"))
    acc = gemm(x, w.T, x_zero_point, w_zero_point, bias)
    return _tflite_output_stage(acc, x_scale, w_scale, y_scale, y_zero_point, activation)
