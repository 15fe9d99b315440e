"""Matrices to stream beats and back, in the engine's stream order (plain integers).

The bit layout of every beat comes from the Amaranth layouts of :mod:`hw.interfaces`
(field offsets and widths are read from them once), so packing here cannot drift from
the hardware. The order of beats is the one documented in :mod:`hw.engine`.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.lib import data

from .config import ArrayConfig
from .interfaces import act_layout, cmd_layout, par_layout, res_layout, wgt_layout

__all__ = ["Gemm", "StreamCodec"]


@dataclass(frozen=True)
class Gemm:
    """One GEMM job: operands and (for requantizing engines) the output stage.

    ``a`` is (M, K), ``w`` is (K, N); ``bias``, ``m0``, ``shift`` have one entry per column.
    """

    a: np.ndarray
    w: np.ndarray
    a_zero_point: int = 0
    bias: np.ndarray | None = None
    m0: np.ndarray | None = None
    shift: np.ndarray | None = None
    out_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

    @property
    def shape(self):
        """``(M, K, N)``."""
        return self.a.shape[0], self.a.shape[1], self.w.shape[1]


def _fields(layout):
    """``{name: (offset, width, signed)}`` of a StructLayout."""
    out = {}
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout):
            shape = shape.as_shape()
        out[name] = (field.offset, shape.width, shape.signed)
    return out


def _pack_lanes(values, width):
    """Pack rows of lane values (int64 array, last axis = lanes) into Python ints."""
    mask = (1 << width) - 1
    beats = []
    for row in values.tolist():
        word = 0
        for i, v in enumerate(row):
            word |= (v & mask) << (i * width)
        beats.append(word)
    return beats


class StreamCodec:
    """Packs a :class:`Gemm` into beats of every input stream and unpacks result beats."""

    def __init__(self, config: ArrayConfig):
        self.config = config
        self._cmd = _fields(cmd_layout(config))
        self._par = _fields(par_layout(config))
        self._a_width = act_layout(config).elem_shape.width
        self._w_width = wgt_layout(config).elem_shape.width
        res = res_layout(config)
        self._r_width = res.elem_shape.width
        self._r_signed = res.elem_shape.signed

    @staticmethod
    def _pack_struct(fields, values):
        word = 0
        for name, (offset, width, _) in fields.items():
            word |= (int(values[name]) & ((1 << width) - 1)) << offset
        return word

    def command(self, gemm: Gemm):
        """The ``cmd`` beat of ``gemm``."""
        m, k, n = gemm.shape
        values = {"m": m, "k": k, "n": n, "a_zero_point": gemm.a_zero_point,
                  "out_zero_point": gemm.out_zero_point, "act_min": gemm.act_min,
                  "act_max": gemm.act_max}
        return self._pack_struct(self._cmd, values)

    def _chunks(self, matrix):
        """Rows of ``matrix`` cut into ``rows``-element chunks along K (last one zero-padded)."""
        rows = self.config.rows
        count, k = matrix.shape
        chunks = -(-k // rows)
        padded = np.zeros((count, chunks * rows), dtype=np.int64)
        padded[:, :k] = matrix
        return padded.reshape(count * chunks, rows)

    def activations(self, gemm: Gemm):
        """``act`` beats: A row by row, ``rows`` elements of K per beat."""
        return _pack_lanes(self._chunks(np.asarray(gemm.a, dtype=np.int64)), self._a_width)

    def weights(self, gemm: Gemm):
        """``wgt`` beats: W channel by channel (W transposed), ``rows`` weights per beat."""
        return _pack_lanes(self._chunks(np.asarray(gemm.w, dtype=np.int64).T), self._w_width)

    def params(self, gemm: Gemm):
        """``par`` beats: one per output channel."""
        n = gemm.shape[2]
        return [self._pack_struct(self._par, {"bias": gemm.bias[i], "m0": gemm.m0[i],
                                              "shift": gemm.shift[i]}) for i in range(n)]

    def result_order(self, m, n):
        """``(row, first column)`` of every result beat, in stream order."""
        cfg = self.config
        block = cfg.block
        order = []
        for m0 in range(0, m, block):
            for n0 in range(0, n, cfg.cols):
                order.extend((row, n0) for row in range(m0, min(m0 + block, m)))
        return order

    def expected_beats(self, out):
        """Result beats (as integers) that carry the (M, N) result matrix ``out``."""
        out = np.asarray(out, dtype=np.int64)
        m, n = out.shape
        cols = self.config.cols
        lanes = np.zeros((len(self.result_order(m, n)), cols), dtype=np.int64)
        for i, (row, n0) in enumerate(self.result_order(m, n)):
            width = min(cols, n - n0)
            lanes[i, :width] = out[row, n0:n0 + width]
        return _pack_lanes(lanes, self._r_width)

    def unpack_result(self, beat):
        """The ``cols`` values of one result beat."""
        mask = (1 << self._r_width) - 1
        values = [(beat >> (i * self._r_width)) & mask for i in range(self.config.cols)]
        if self._r_signed:
            half = 1 << (self._r_width - 1)
            values = [v - (1 << self._r_width) if v >= half else v for v in values]
        return values

    def results(self, beats, m, n):
        """The (M, N) matrix carried by ``beats`` (inverse of :meth:`expected_beats`)."""
        order = self.result_order(m, n)
        if len(beats) != len(order):
            raise ValueError(f"an {m}x{n} result takes {len(order)} beats, not {len(beats)}")
        out = np.zeros((m, n), dtype=np.int64)
        cols = self.config.cols
        for beat, (row, n0) in zip(beats, order, strict=True):
            width = min(cols, n - n0)
            out[row, n0:n0 + width] = self.unpack_result(beat)[:width]
        return out
