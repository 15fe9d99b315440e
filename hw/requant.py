"""Pipelined per-column requantizer: bias, M0/shift (two-step rounding), zero point, clamp."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import STAGE_LATENCY, ArrayConfig
from .interfaces import out_shape, par_layout

__all__ = ["Requantizer", "REQUANT_LATENCY"]

#: Cycles from ``acc``/``params`` in to ``out``: one register per stage below.
REQUANT_LATENCY = STAGE_LATENCY["requant"]

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class Requantizer(wiring.Component):
    """``cols`` independent requantization pipelines of :data:`REQUANT_LATENCY` stages.

    For each column, with TFLite's semantics (see ``golden.fixedpoint``)::

        x   = wrap_acc(acc + bias)                 sign-extended to 32 bits
        x   = wrap_32(x << max(shift, 0))
        y   = SaturatingRoundingDoublingHighMul(x, m0)
        y   = RoundingDivideByPOT(y, max(-shift, 0))
        out = clamp(wrap_32(y + out_zero_point), act_min, act_max)

    SaturatingRoundingDoublingHighMul is computed as ``(x * m0 + 2**30) >> 31`` (an
    arithmetic, flooring shift): for every product this equals gemmlowp's nudge followed
    by a division that truncates toward zero, so ties go to +infinity; the one overflow,
    ``INT32_MIN * INT32_MIN``, saturates to ``INT32_MAX``.

    Stages: 1 bias and left shift; 2 the 32x32 product; 3 rounding high half;
    4 rounding right shift; 5 zero point and clamp.

    Members
    -------
    valid : In(1)
    acc : In(ArrayLayout(acc_bits, cols))
    params : In(ArrayLayout(par_layout, cols))
        Per-column bias, m0, shift, in the same cycle as ``acc``.
    out_zero_point, act_min, act_max : In(out shape)
        Held stable for the whole GEMM.
    out_valid : Out(1)
    out : Out(ArrayLayout(out shape, cols))
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        shape = out_shape(config)
        super().__init__({
            "valid": In(1),
            "acc": In(data.ArrayLayout(signed(config.acc_bits), config.cols)),
            "params": In(data.ArrayLayout(par_layout(config), config.cols)),
            "out_zero_point": In(shape), "act_min": In(shape), "act_max": In(shape),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(shape, config.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        valid = self.valid
        for _ in range(REQUANT_LATENCY):
            nxt = Signal()
            m.d.sync += nxt.eq(valid)
            valid = nxt
        m.d.comb += self.out_valid.eq(valid)
        for c in range(cfg.cols):
            m.d.comb += self.out[c].eq(self._column(m, c, self.acc[c], self.params[c]))
        return m

    def _column(self, m, c, acc, params):
        cfg = self._config

        def reg(shape, value, name):
            r = Signal(shape, name=f"c{c}_{name}")
            m.d.sync += r.eq(value)
            return r

        # Stage 1: bias in the accumulator's width, then the left shift in 32 bits.
        biased = (acc + params.bias)[:cfg.acc_bits].as_signed()
        left = Mux(params.shift > 0, params.shift, 0)[:5]
        right = Mux(params.shift < 0, -params.shift, 0)[:5]
        x = reg(signed(32), (biased.as_signed() << left)[:32].as_signed(), "x")
        m0 = reg(signed(32), params.m0, "m0")
        right1 = reg(unsigned(5), right, "right1")
        # Stage 2: full product.
        prod = reg(signed(64), x * m0, "prod")
        sat = reg(unsigned(1), (x == _INT32_MIN) & (m0 == _INT32_MIN), "sat")
        right2 = reg(unsigned(5), right1, "right2")
        # Stage 3: rounding doubling high multiply.
        high = reg(signed(32), Mux(sat, _INT32_MAX, ((prod + (1 << 30)) >> 31)[:32].as_signed()),
                   "high")
        right3 = reg(unsigned(5), right2, "right3")
        # Stage 4: rounding divide by a power of two, ties away from zero.
        mask = Signal(unsigned(32), name=f"c{c}_mask")
        m.d.comb += mask.eq((1 << right3) - 1)
        remainder = (high.as_unsigned() & mask)
        threshold = (mask >> 1) + (high < 0)
        scaled = reg(signed(32), ((high >> right3) + (remainder > threshold))[:32].as_signed(),
                     "scaled")
        # Stage 5: output zero point (int32 wrap), then the fused-activation clamp.
        shifted = Signal(signed(32), name=f"c{c}_plus_zp")
        m.d.comb += shifted.eq((scaled + self.out_zero_point)[:32].as_signed())
        clamped = Mux(shifted < self.act_min, self.act_min,
                      Mux(shifted > self.act_max, self.act_max, shifted))
        return reg(out_shape(cfg), clamped, "out")
