"""Low-bit quantizers of BinaryNet, XNOR-Net, TWN and DoReFa-Net, and FINN's threshold stage."""

import numbers

import numpy as np

from ._validate import (
    check_bits,
    check_int,
    check_int_array,
    check_real_array,
    check_scale,
    first_of,
)
from .fixedpoint import INT32_MAX, INT32_MIN

__all__ = [
    "binarize", "ternarize", "dorefa_quantize_weights", "dorefa_quantize_activations",
    "threshold", "batchnorm_thresholds",
]

# Bisection over the int32 accumulator range: 2**32 + 1 outcomes (every x, or none) take 33
# halvings.
_BISECT_STEPS = 33


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def _check_nonempty(name, arr):
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one element, not shape {arr.shape}")


def _reduction_axes(name, arr, axis):
    """The axes a statistic is taken over: all of them, or all but the channel ``axis``."""
    if axis is None:
        return None
    if arr.ndim == 0:
        raise ValueError(f"axis must be None for a 0-d {name}, not {axis!r}")
    axis = check_int("axis", axis, -arr.ndim, arr.ndim - 1) % arr.ndim
    return tuple(i for i in range(arr.ndim) if i != axis)


def _mean_abs(name, arr, axis):
    """``mean(|arr|)`` per tensor (a float) or per channel along ``axis`` (a 1-D array)."""
    others = _reduction_axes(name, arr, axis)
    _check_nonempty(name, arr)
    mean = np.mean(np.abs(arr), axis=others)
    return float(mean) if others is None else mean.astype(np.float64)


def _sign_codes(arr):
    """±1 codes with ``sign(0) = +1`` (and ``-0.0`` counted as 0), as int8."""
    return np.where(arr >= 0, 1, -1).astype(np.int8)


def _signed_dtype(bits):
    if bits <= 8:
        return np.int8
    return np.int16 if bits <= 16 else np.int32


def binarize(x, scaled=False, axis=None):
    """Binarize real values to ±1 codes: BinaryNet's deterministic sign, optionally scaled.

    BinaryNet (Courbariaux, Hubara, Soudry, El-Yaniv and Bengio, "Binarized Neural Networks",
    2016, arXiv:1602.02830) uses ``x_b = sign(x) = +1 if x >= 0 else -1``, so
    ``sign(0) = +1`` (and ``-0.0`` counts as 0), as BinaryNet's code does too. BinaryNet has
    no scale: ``scale = 1.0``. With ``scaled=True`` the scale is XNOR-Net's (Rastegari,
    Ordonez, Redmon and Farhadi, "XNOR-Net", 2016, arXiv:1603.05279):
    ``W ~ alpha * sign(W)`` with ``alpha = mean(|W|)``, per tensor, or per channel along
    ``axis`` (the mean then runs over all the other axes, e.g. ``axis=0`` for per-filter
    scales of an OHWI kernel). The real value is ``scale * code``. An all-zero tensor (or
    channel) gets scale 0.0, the XNOR-Net formula's value: its codes are all +1 and
    ``0.0 * code`` reproduces the zeros exactly (:func:`golden.dequantize` refuses a zero
    scale, so multiply directly there).

    The codes feed :func:`golden.pack_signs` and :func:`golden.xnor_popcount_gemm`
    (bit 1 = +1, bit 0 = -1).

    Parameters
    ----------
    x : array_like of real numbers
        Finite values, any shape.
    scaled : bool
        Compute XNOR-Net's ``mean(|x|)`` scale instead of BinaryNet's 1.0.
    axis : int, optional
        Channel axis of a per-channel scale; only with ``scaled=True``.

    Returns
    -------
    codes : numpy.ndarray of int8, ``x``'s shape, each -1 or +1
    scale : float (1.0 unscaled, or ``mean(|x|)`` per tensor), or float64 array of shape
        ``(x.shape[axis],)`` per channel

    Raises
    ------
    TypeError
        If ``x`` is not real-valued, or ``scaled`` is not a bool.
    ValueError
        If ``x`` is not finite, ``axis`` is out of range or given without ``scaled=True``,
        or ``x`` is empty when a scale must be computed from it.
    """
    x = check_real_array("x", x, show_dtype=True)
    scaled = _check_bool("scaled", scaled)
    codes = _sign_codes(x)
    if not scaled:
        if axis is not None:
            raise ValueError(f"axis must be None when scaled is False, not {axis!r}")
        return codes, 1.0
    return codes, _mean_abs("x", x, axis)


def ternarize(w, threshold_factor=0.7, axis=None):
    """Ternarize weights to codes in {-1, 0, +1} with TWN's threshold and scale.

    Ternary Weight Networks (Li, Zhang and Liu, 2016, arXiv:1605.04711)::

        Delta = t * mean(|W|)
        code_i = +1 if W_i > Delta, -1 if W_i < -Delta, else 0
        alpha = mean(|W_i| for i in I_Delta),  I_Delta = {i : |W_i| > Delta}

    with ``t = threshold_factor`` (the paper's 0.7). Values exactly at ``±Delta`` map to 0.
    The statistics are per tensor, or per channel along ``axis`` (over all the other axes).
    The real value is ``alpha * code``. When no element of a tensor (or channel) exceeds
    ``Delta`` (an all-zero tensor, or ``threshold_factor >= 1`` with all ``|W|`` equal), every
    code is 0 and ``alpha`` is defined as 1.0: the real value is 0 whatever ``alpha`` is, and
    1.0 keeps the scale positive for :func:`golden.dequantize` and requantization.

    qmac runs a ternary weight as a signed 2-bit integer code (-1, 0, +1 in the range
    -2..1): two two's-complement bit planes on the bit-serial PE, i.e.
    ``golden.bitplane_gemm(a, codes, a_bits, w_bits=2, w_signed=True)``.

    Parameters
    ----------
    w : array_like of real numbers
        Finite weights, any shape, not empty.
    threshold_factor : real number
        ``t`` in ``Delta = t * mean(|w|)``; finite and non-negative.
    axis : int, optional
        Channel axis of per-channel statistics; ``None`` for per tensor.

    Returns
    -------
    codes : numpy.ndarray of int8, ``w``'s shape, each -1, 0 or +1
    alpha : float (per tensor) or float64 array of shape ``(w.shape[axis],)`` (per channel)

    Raises
    ------
    TypeError
        If ``w`` or ``threshold_factor`` is not real-valued.
    ValueError
        If ``w`` is empty or not finite, ``threshold_factor`` is negative or not finite, or
        ``axis`` is out of range.
    """
    w = check_real_array("w", w, show_dtype=True)
    factor = _check_factor("threshold_factor", threshold_factor)
    others = _reduction_axes("w", w, axis)
    _check_nonempty("w", w)
    magnitude = np.abs(w)
    delta = factor * np.mean(magnitude, axis=others, keepdims=True)
    codes = np.where(w > delta, 1, np.where(w < -delta, -1, 0)).astype(np.int8)
    kept = magnitude > delta
    count = np.sum(kept, axis=others)
    total = np.sum(np.where(kept, magnitude, 0.0), axis=others)
    alpha = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    return codes, (float(alpha) if others is None else alpha.astype(np.float64))


def _check_factor(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, not {value!r}")
    return value


def dorefa_quantize_weights(w, k):
    """Quantize weights to ``k`` bits with DoReFa-Net's rule; return odd integer codes.

    DoReFa-Net (Zhou, Wu, Ni, Zhou, Wen and Zou, 2016, arXiv:1606.06160), for ``k > 1``::

        w_q = 2 * quantize_k(tanh(w) / (2 * max|tanh(w)|) + 1/2) - 1
        quantize_k(r) = round((2^k - 1) * r) / (2^k - 1)

    with the maximum over the whole tensor. With ``q = round((2^k - 1) r)`` in
    ``0..2^k - 1``, ``w_q = (2q - (2^k - 1)) / (2^k - 1)``: the integer code is
    ``2q - (2^k - 1)``, an odd integer in ``[-(2^k - 1), 2^k - 1]``, and
    ``scale = 1 / (2^k - 1)``, so ``real = scale * code``. **The codes need k + 1 signed
    bits** (``golden.bitplane_gemm(..., w_bits=k + 1, w_signed=True)``; ``k = 16`` gives
    17-bit codes, beyond the golden GEMMs' 16-bit operands). Rounding is half to even
    (``np.rint``), as ``tf.round`` in the paper's reference implementation (tensorpack's
    ``dorefa.py``); the arithmetic is float64. A zero weight gives ``r = 1/2`` and code +1.
    If ``max |tanh(w)|`` is 0 (all-zero ``w``), ``r`` is defined as 1/2 everywhere, the
    value every zero weight gets otherwise: all codes are +1.

    For ``k = 1`` the paper uses ``w_q = sign(w) * E(|w|)`` (the mean over the tensor):
    codes ±1 with ``sign(0) = +1`` (tensorpack's ``tf.sign`` would give 0, which is not a
    1-bit code) and ``scale = mean(|w|)``; these need 2 signed bits as integers, or one bit
    each through :func:`golden.pack_signs`. An all-zero ``w`` gets scale 0.0 (its codes
    are +1, and ``0.0 * code`` reproduces the zeros).

    The paper's 32 bits means "not quantized" (float); ``k`` is limited to 1..16.

    Parameters
    ----------
    w : array_like of real numbers
        Finite weights, any shape, not empty.
    k : int, 1..16

    Returns
    -------
    codes : numpy.ndarray, ``w``'s shape, of the smallest signed dtype holding ``k + 1``
        bits: int8 for ``k <= 7``, int16 for ``k <= 15``, int32 for ``k = 16``
    scale : float, ``1 / (2**k - 1)`` for ``k > 1``, ``mean(|w|)`` for ``k = 1``

    Raises
    ------
    TypeError
        If ``w`` is not real-valued or ``k`` not an integer.
    ValueError
        If ``k`` is outside 1..16, or ``w`` is empty or not finite.
    """
    k = check_bits("k", k, 1, 16)
    w = check_real_array("w", w, show_dtype=True)
    _check_nonempty("w", w)
    if k == 1:
        return _sign_codes(w), float(np.mean(np.abs(w)))
    levels = (1 << k) - 1
    squashed = np.tanh(w)
    peak = np.max(np.abs(squashed))
    if peak == 0:
        ratio = np.full(w.shape, 0.5)
    else:
        ratio = squashed / (2.0 * peak) + 0.5
    q = np.rint(levels * ratio).astype(np.int64)
    return (2 * q - levels).astype(_signed_dtype(k + 1)), 1.0 / levels


def dorefa_quantize_activations(x, k):
    """Quantize activations to unsigned ``k``-bit codes with DoReFa-Net's rule.

    DoReFa-Net (Zhou et al., 2016, arXiv:1606.06160): the activation is first bounded to
    ``[0, 1]`` (the reference AlexNet model clips it; the clip is part of this function), then
    ``x_q = quantize_k(x) = round((2^k - 1) * clip(x, 0, 1)) / (2^k - 1)``.

    The code is ``q = round((2^k - 1) * clip(x, 0, 1))`` in ``0..2^k - 1`` (unsigned ``k``
    bits) and ``scale = 1 / (2^k - 1)``, so ``real = scale * q``. Rounding is half to even
    (``np.rint``), as ``tf.round`` in the reference implementation; the arithmetic is float64.

    Parameters
    ----------
    x : array_like of real numbers
        Finite activations, any shape.
    k : int, 1..16

    Returns
    -------
    codes : numpy.ndarray, ``x``'s shape, uint8 for ``k <= 8`` and uint16 otherwise
    scale : float, ``1 / (2**k - 1)``

    Raises
    ------
    TypeError
        If ``x`` is not real-valued or ``k`` not an integer.
    ValueError
        If ``k`` is outside 1..16 or ``x`` is not finite.
    """
    k = check_bits("k", k, 1, 16)
    x = check_real_array("x", x, show_dtype=True)
    levels = (1 << k) - 1
    q = np.rint(levels * np.clip(x, 0.0, 1.0))
    return q.astype(np.uint8 if k <= 8 else np.uint16), 1.0 / levels


def threshold(acc, thresholds, invert):
    """FINN's threshold output stage: one output bit per accumulator, per column.

    FINN (Umuroglu, Fraser, Gambardella, Blott, Leong, Jahre and Vissers, 2017,
    arXiv:1612.07119) replaces batch normalization followed by sign with an integer
    comparison:
    ``y[m, n] = (acc[m, n] >= T[n]) XOR invert[n]``.

    The column (last axis of ``acc``) is the output channel. Bit 1 stands for +1 and bit 0
    for -1 (DESIGN.md section 2), so the result feeds :func:`golden.pack_bits` and the next
    layer's :func:`golden.xnor_popcount_gemm`. A channel with ``T = INT32_MIN`` outputs
    ``1 ^ invert`` for every accumulator: constant channels use it (see
    :func:`batchnorm_thresholds`).

    Parameters
    ----------
    acc : array_like of int, shape (..., N)
        Accumulators in the int32 range, at least 1-D (typically (M, N)).
    thresholds : array_like of int, shape (N,)
        Per-column thresholds in the int32 range.
    invert : array_like of bool or of 0/1 int, shape (N,)
        Per-column inversion of the comparison.

    Returns
    -------
    numpy.ndarray of uint8, ``acc``'s shape, each 0 or 1

    Raises
    ------
    TypeError
        If ``acc`` or ``thresholds`` is not an integer array, or ``invert`` is neither bool
        nor integer.
    ValueError
        If a value leaves the int32 range, ``invert`` holds other than 0 and 1, ``acc`` is
        0-d, or ``thresholds`` or ``invert`` does not have one entry per column.
    """
    acc = check_int_array("acc", acc, INT32_MIN, INT32_MAX)
    if acc.ndim == 0:
        raise ValueError(f"acc must have at least 1 dimension, not shape {acc.shape}")
    n = acc.shape[-1]
    thresholds = check_int_array("thresholds", thresholds, INT32_MIN, INT32_MAX, ndim=1)
    if thresholds.shape[0] != n:
        raise ValueError(f"thresholds must have one entry per column ({n}), not shape "
                         f"{thresholds.shape}")
    invert = _check_flags("invert", invert, n)
    return ((acc >= thresholds) ^ invert).astype(np.uint8)


def _check_flags(name, value, n):
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be a bool or 0/1 integer array, not an array of dtype "
                            f"{arr.dtype}")
        bad = (arr < 0) | (arr > 1)
        if np.any(bad):
            raise ValueError(f"{name} must hold only 0 and 1, not {first_of(arr, bad)}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per column ({n}), not shape {arr.shape}")
    return arr.astype(np.bool_)


def batchnorm_thresholds(gamma, beta, mean, var, eps=1e-5, acc_scale=1.0):
    """Integer thresholds equal to sign(batchnorm(acc)), for :func:`threshold`.

    The decision is that of batch normalization followed by sign with ``sign(0) = +1``,
    evaluated in float64 for the real accumulator value ``acc_scale * x``, in exactly this
    order (``std = np.sqrt(var + eps)`` first)::

        gamma * (acc_scale * x - mean) / std + beta >= 0

    The returned ``(T, invert)`` satisfy ``threshold(x, T, invert) == decision(x)`` for
    **every** integer ``x`` in the int32 range, channel by channel (FINN, Umuroglu et al.,
    2017). In real arithmetic, with ``acc_scale > 0`` and ``gamma != 0``,
    ``bn(x) >= 0`` iff ``gamma * (acc_scale * x - mean) >= -beta * std``; with
    ``tau = mean / acc_scale - beta * std / (gamma * acc_scale)`` the decision is
    ``x >= tau`` for ``gamma > 0`` (``T = ceil(tau)``, ``invert = 0``) and
    ``x <= tau`` for ``gamma < 0`` (``T = floor(tau) + 1``, ``invert = 1``). Computed in
    float64, ``tau`` can land off the float decision's boundary (by one, or by much more when
    ``mean / acc_scale`` and the ``beta`` term nearly cancel), so ``T`` is instead found by
    bisection over the int32 range on the float64 decision itself: each float operation
    rounds monotonically, so the decision is monotone in ``x`` and the first integer where
    it changes is exact.

    Constant channels use ``T = INT32_MIN`` (``x >= INT32_MIN`` always holds): ``invert = 0``
    is always 1 and ``invert = 1`` always 0. That covers ``gamma == 0`` (output
    ``beta >= 0``, i.e. sign(beta) with sign(0) = +1), and thresholds that would fall
    outside int32: ``T > INT32_MAX`` for ``gamma > 0`` (always 0), and for ``gamma < 0`` a
    decision true for every int32 ``x`` (always 1, so ``invert = 0`` there).

    Parameters
    ----------
    gamma : array_like of real numbers, shape (N,)
        Batch-norm scale, one per channel (any sign, or 0).
    beta, mean : real number or array_like of them, shape (N,)
        Batch-norm shift and running mean.
    var : real number or array_like of them, shape (N,)
        Running variance, non-negative.
    eps : real number or array_like of them, shape (N,)
        Positive and finite; ``var + eps`` must be finite.
    acc_scale : real number or array_like of them, shape (N,)
        Real value of one accumulator unit (e.g. ``s_in * s_w[n]``), positive and finite.

    Returns
    -------
    thresholds : numpy.ndarray of int32, shape (N,)
    invert : numpy.ndarray of uint8, shape (N,), each 0 or 1

    Raises
    ------
    TypeError
        If an argument is not real-valued.
    ValueError
        If an argument is not finite, ``var`` is negative, ``eps`` or ``acc_scale`` is not
        positive, ``var + eps`` overflows, ``gamma`` is not 1-D, or another argument is
        neither a scalar nor one entry per channel.
    """
    gamma = check_real_array("gamma", gamma, show_dtype=True)
    if gamma.ndim != 1:
        raise ValueError(f"gamma must have 1 dimensions, not shape {gamma.shape}")
    n = gamma.shape[0]
    beta = _per_channel("beta", check_real_array("beta", beta, show_dtype=True), n)
    mean = _per_channel("mean", check_real_array("mean", mean, show_dtype=True), n)
    var = _per_channel("var", check_real_array("var", var, show_dtype=True), n)
    bad = var < 0
    if np.any(bad):
        raise ValueError(f"var must be non-negative, not {first_of(var, bad)!r}")
    eps = _per_channel("eps", check_scale("eps", eps).astype(np.float64), n)
    acc_scale = _per_channel("acc_scale", check_scale("acc_scale", acc_scale)
                             .astype(np.float64), n)
    with np.errstate(over="ignore"):
        variance = var + eps
    bad = ~np.isfinite(variance)
    if np.any(bad):
        raise ValueError(f"var + eps must be finite, not {first_of(variance, bad)!r}")
    std = np.sqrt(variance)

    def decision(x):
        # gamma == 0 channels may give 0 * inf = nan here; they are overwritten below.
        with np.errstate(over="ignore", invalid="ignore"):
            return gamma * (acc_scale * x - mean) / std + beta >= 0

    # Search the first x where `rising` holds: the decision for gamma > 0 and its negation
    # for gamma < 0, both non-decreasing in x. `lo` ends at INT32_MAX + 1 if there is none.
    negative = gamma < 0
    lo = np.full(n, INT32_MIN, dtype=np.int64)
    hi = np.full(n, INT32_MAX + 1, dtype=np.int64)
    for _ in range(_BISECT_STEPS):
        active = lo < hi
        mid = (lo + hi) // 2
        rising = decision(mid.astype(np.float64)) ^ negative
        hi = np.where(active & rising, mid, hi)
        lo = np.where(active & ~rising, mid + 1, lo)
    found = lo <= INT32_MAX
    thresholds = np.where(found, lo, INT32_MIN)
    invert = np.where(found, negative, ~negative)
    flat = gamma == 0
    thresholds = np.where(flat, INT32_MIN, thresholds)
    invert = np.where(flat, beta < 0, invert)
    return thresholds.astype(np.int32), invert.astype(np.uint8)


def _per_channel(name, arr, n):
    if arr.ndim == 0:
        return np.full(n, arr[()], dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one entry per channel ({n}), "
                         f"not shape {arr.shape}")
    return arr
