"""Integer GEMM with int32 (or narrower) wrap-around accumulation, exact and fast."""

import numpy as np

from ._validate import check_bits, check_int_array
from .fixedpoint import wrap

__all__ = ["gemm", "OPERAND_MIN", "OPERAND_MAX"]

#: Operands and zero points may be any 16-bit signed or unsigned integer.
OPERAND_MIN, OPERAND_MAX = -(1 << 15), (1 << 16) - 1

# Largest integer magnitude up to which every integer is exactly representable.
_EXACT_F32 = 1 << 24
_EXACT_F64 = 1 << 53
# float32 is only worth it when each K-chunk is long enough to amortize the conversions.
_MIN_F32_CHUNK = 128


def gemm(a, w, a_zero_point=0, w_zero_point=0, bias=None, acc_bits=32):
    """``acc[m, n] = wrap(sum_k (a[m, k] - a_zp) * (w[k, n] - w_zp[n]) + bias[n], acc_bits)``.

    The accumulator is ``acc_bits`` wide and wraps (two's complement) when a sum leaves its
    range, as the hardware's adders do; because wrap-around is arithmetic modulo
    ``2**acc_bits``, the order of the additions does not matter and the result is the
    exact sum wrapped once. The bias is added in the same accumulator.

    The sum is computed exactly with BLAS: the operands are split along K into chunks
    short enough that every partial sum provably stays below ``2**24`` (float32) or
    ``2**53`` (float64) in magnitude, so every floating-point operation is exact; the
    chunks are added in int64.

    Parameters
    ----------
    a : array_like of int, shape (M, K)
        Activations, each in -32768..65535.
    w : array_like of int, shape (K, N)
        Weights, each in -32768..65535.
    a_zero_point : int
        Activation zero point, subtracted from every ``a``.
    w_zero_point : int or array_like of int, shape (N,)
        Weight zero point, per tensor or per output column.
    bias : array_like of int, shape (N,), optional
        Added to every row; must fit the accumulator.
    acc_bits : int
        Accumulator width, 1..32.

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)
    """
    acc_bits = check_bits("acc_bits", acc_bits, 1, 32)
    a = check_int_array("a", a, OPERAND_MIN, OPERAND_MAX, ndim=2, widen=False)
    w = check_int_array("w", w, OPERAND_MIN, OPERAND_MAX, ndim=2, widen=False)
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"a and w must agree on K, not a of shape {a.shape} and w of shape "
                         f"{w.shape}")
    k, n = w.shape
    a_zp = check_int_array("a_zero_point", a_zero_point, OPERAND_MIN, OPERAND_MAX, ndim=0)
    w_zp = check_int_array("w_zero_point", w_zero_point, OPERAND_MIN, OPERAND_MAX, ndim=(0, 1))
    if w_zp.ndim == 1 and w_zp.shape[0] != n:
        raise ValueError(f"w_zero_point must be a scalar or have one entry per column ({n}), "
                         f"not shape {w_zp.shape}")
    acc_lo, acc_hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if bias is not None:
        bias = check_int_array("bias", bias, acc_lo, acc_hi, ndim=1)
        if bias.shape[0] != n:
            raise ValueError(f"bias must have one entry per column ({n}), not shape {bias.shape}")

    acc = _exact_matmul(a, int(a_zp), w, w_zp)
    if bias is not None:
        acc += bias
    return wrap(acc, acc_bits).astype(np.int32)


def _largest_centered(x, zero_point, axis=None):
    """``max |x - zero_point|`` from the extremes of ``x`` alone (no centred copy)."""
    if axis is None:
        return max(abs(int(x.max()) - zero_point), abs(int(x.min()) - zero_point))
    hi = x.max(axis=axis).astype(np.int64) - zero_point
    lo = x.min(axis=axis).astype(np.int64) - zero_point
    return int(max(np.abs(hi).max(), np.abs(lo).max()))


def _exact_matmul(a, a_zp, w, w_zp):
    """Exact int64 ``(a - a_zp) @ (w - w_zp)`` of integer matrices, via BLAS.

    Every centred entry fits 17 bits, so converting to float and subtracting the zero
    point in float are exact; K is split so that every partial sum is exact too.
    """
    m, k = a.shape
    n = w.shape[1]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), dtype=np.int64)
    per_column = w_zp.ndim == 1
    largest_product = (max(_largest_centered(a, a_zp), 1)
                       * max(_largest_centered(w, w_zp if per_column else int(w_zp),
                                               axis=0 if per_column else None), 1))
    chunk32 = _EXACT_F32 // largest_product
    if chunk32 >= min(k, _MIN_F32_CHUNK):
        dtype, chunk = np.float32, chunk32
    else:
        dtype, chunk = np.float64, _EXACT_F64 // largest_product
    af = a.astype(dtype)
    if a_zp:
        af -= dtype(a_zp)
    wf = w.astype(dtype)
    if per_column or w_zp:
        wf -= w_zp.astype(dtype)
    if chunk >= k:
        return (af @ wf).astype(np.int64)
    acc = np.zeros((m, n), dtype=np.int64)
    for k0 in range(0, k, chunk):
        acc += (af[:, k0:k0 + chunk] @ wf[k0:k0 + chunk]).astype(np.int64)
    return acc
