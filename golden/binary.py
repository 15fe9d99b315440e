"""Binary (XNOR-popcount) and bit-plane GEMMs on packed bits.

Encoding (DESIGN.md section 2): bit 1 stands for +1 and bit 0 for -1. Bits are packed
along K into bytes, little-endian within each byte: element ``k`` is bit ``k % 8`` of byte
``k // 8``. Activations ``(M, K)`` pack along axis 1 into ``(M, ceil(K/8))``; weights
``(K, N)`` pack along axis 0 into ``(ceil(K/8), N)``. Bits past ``K`` in the last byte are
padding: they are masked, so their value never matters.
"""

import numpy as np

from ._validate import check_bits, check_int, check_int_array, int_range
from .fixedpoint import wrap

__all__ = ["pack_bits", "unpack_bits", "pack_signs", "xnor_popcount_gemm", "bitplane_gemm"]

# Rows of `a` handled per block, so the (rows, N, words) temporary stays near 32 MiB.
_BLOCK_BYTES = 32 << 20


def pack_bits(bits, axis=-1):
    """Pack an array of 0/1 integers along ``axis`` into uint8 bytes (little-endian bits)."""
    bits = check_int_array("bits", bits, 0, 1)
    return np.packbits(bits.astype(np.uint8), axis=axis, bitorder="little")


def unpack_bits(packed, count, axis=-1):
    """Inverse of :func:`pack_bits`: ``count`` 0/1 values along ``axis`` (int64)."""
    packed = _check_packed("packed", packed)
    count = check_int("count", count, 0)
    return np.unpackbits(packed, axis=axis, count=count, bitorder="little").astype(np.int64)


def pack_signs(x, axis=-1):
    """Pack a ±1 array along ``axis``: +1 becomes bit 1 and -1 becomes bit 0."""
    x = check_int_array("x", x, -1, 1)
    if np.any(x == 0):
        raise ValueError("x must hold only -1 and +1, not 0")
    return pack_bits((x > 0).astype(np.int64), axis=axis)


def _check_packed(name, value):
    arr = np.asarray(value)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array of packed bits, not an array of dtype "
                        f"{arr.dtype}")
    return arr


def _packed_operands(a_packed, w_packed, k):
    """Validate packed operands; return them as (M, words) and (N, words) uint64, padding zeroed."""
    a_packed = _check_packed("a_packed", a_packed)
    w_packed = _check_packed("w_packed", w_packed)
    if a_packed.ndim != 2 or w_packed.ndim != 2:
        raise ValueError(f"a_packed and w_packed must be 2-D, not shapes {a_packed.shape} and "
                         f"{w_packed.shape}")
    k = check_int("k", k, 1)
    nbytes = -(-k // 8)
    if a_packed.shape[1] != nbytes or w_packed.shape[0] != nbytes:
        raise ValueError(f"k = {k} needs {nbytes} packed bytes: a_packed must be (M, {nbytes}) "
                         f"and w_packed ({nbytes}, N), not {a_packed.shape} and "
                         f"{w_packed.shape}")
    mask = np.full(nbytes, 0xFF, dtype=np.uint8)
    if k % 8:
        mask[-1] = (1 << (k % 8)) - 1
    return _as_words(a_packed & mask), _as_words(w_packed.T & mask)


def _as_words(rows):
    """View (rows, bytes) uint8 as (rows, words) uint64, zero-padding the byte count."""
    rows = np.ascontiguousarray(rows)
    pad = (-rows.shape[1]) % 8
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    return np.ascontiguousarray(rows).view(np.uint64)


def _popcount_matmul(a_words, w_words, op):
    """``out[m, n] = sum popcount(op(a_words[m], w_words[n]))`` over the word axis (int64)."""
    m, words = a_words.shape
    n = w_words.shape[0]
    out = np.empty((m, n), dtype=np.int64)
    block = max(1, _BLOCK_BYTES // max(1, n * words * 8))
    for m0 in range(0, m, block):
        combined = op(a_words[m0:m0 + block, None, :], w_words[None, :, :])
        out[m0:m0 + block] = np.bitwise_count(combined).sum(axis=2, dtype=np.int64)
    return out


def xnor_popcount_gemm(a_packed, w_packed, k):
    """±1 dot products of packed binary operands: ``k - 2 * popcount(a XOR w)``.

    Equal to ``gemm`` of the ±1 matrices (bit 1 = +1, bit 0 = -1) over the ``k`` valid bits;
    padding bits past ``k`` are ignored.

    Parameters
    ----------
    a_packed : uint8 array, shape (M, ceil(k/8))
    w_packed : uint8 array, shape (ceil(k/8), N)
    k : int
        Number of valid bits (the dot-product length), any positive integer.

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)
    """
    a_words, w_words = _packed_operands(a_packed, w_packed, k)
    mismatches = _popcount_matmul(a_words, w_words, np.bitwise_xor)
    return (k - 2 * mismatches).astype(np.int32)


def bitplane_gemm(a, w, a_bits, w_bits, a_signed=True, w_signed=True, acc_bits=32):
    """Integer GEMM of k-bit operands by bit planes: ``sum 2**(i+j) popcount(a_i AND w_j)``.

    ``a`` is split into ``a_bits`` planes and ``w`` into ``w_bits`` planes of its two's
    complement (or unsigned) code; the top plane of a signed operand weighs
    ``-2**(bits-1)``. The result equals ``gemm(a, w, acc_bits=acc_bits)`` (wrap-around at
    ``acc_bits``), computed only from ANDs and popcounts, as bit-serial hardware does.

    Parameters
    ----------
    a : int array (M, K), each within the ``a_bits`` range
    w : int array (K, N), each within the ``w_bits`` range
    a_bits, w_bits : int, 1..16
    a_signed, w_signed : bool
    acc_bits : int, 1..32

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)
    """
    a_bits = check_bits("a_bits", a_bits, 1, 16)
    w_bits = check_bits("w_bits", w_bits, 1, 16)
    acc_bits = check_bits("acc_bits", acc_bits, 1, 32)
    a = check_int_array("a", a, *int_range(a_bits, a_signed), ndim=2)
    w = check_int_array("w", w, *int_range(w_bits, w_signed), ndim=2)
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"a and w must agree on K, not a of shape {a.shape} and w of shape "
                         f"{w.shape}")
    k = a.shape[1]
    m, n = a.shape[0], w.shape[1]
    if k == 0:
        return np.zeros((m, n), dtype=np.int32)
    a_planes = [_as_words(pack_bits((a >> i) & 1, axis=1)) for i in range(a_bits)]
    w_planes = [_as_words(pack_bits((w >> j) & 1, axis=0).T) for j in range(w_bits)]
    acc = np.zeros((m, n), dtype=np.int64)
    for i, a_plane in enumerate(a_planes):
        a_weight = -(1 << i) if (a_signed and i == a_bits - 1) else (1 << i)
        for j, w_plane in enumerate(w_planes):
            w_weight = -(1 << j) if (w_signed and j == w_bits - 1) else (1 << j)
            acc += a_weight * w_weight * _popcount_matmul(a_plane, w_plane, np.bitwise_and)
    return wrap(acc, acc_bits).astype(np.int32)
