"""Per-column threshold compares: the FINN-style binary output stage."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import STAGE_LATENCY, ArrayConfig
from .interfaces import par_layout

__all__ = ["ThresholdUnit", "THRESHOLD_LATENCY"]

#: Cycles from ``acc``/``params`` in to ``out``.
THRESHOLD_LATENCY = STAGE_LATENCY["threshold"]


class ThresholdUnit(wiring.Component):
    """``cols`` registered compares: ``out[c] = (acc[c] >= threshold[c]) XOR invert[c]``.

    With integer thresholds from ``golden.batchnorm_thresholds``, the bit is
    ``sign(batchnorm(acc))`` (1 for +1, 0 for -1): a batch normalisation followed by a
    binary activation, folded into one compare per channel (Umuroglu et al., FINN, 2017).
    ``invert`` covers a negative batchnorm scale, where large sums give -1.

    Members
    -------
    valid : In(1)
    acc : In(ArrayLayout(acc_bits, cols))
    params : In(ArrayLayout(par_layout, cols))
        Per-column ``threshold`` and ``invert``, in the same cycle as ``acc``.
    out_valid : Out(1)
    out : Out(ArrayLayout(1, cols))
    """

    def __init__(self, config: ArrayConfig):
        if not config.threshold:
            raise ValueError("ThresholdUnit needs a configuration with threshold=True")
        self._config = config
        super().__init__({
            "valid": In(1),
            "acc": In(data.ArrayLayout(signed(config.acc_bits), config.cols)),
            "params": In(data.ArrayLayout(par_layout(config), config.cols)),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(1, config.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.out_valid.eq(self.valid)
        for c in range(self._config.cols):
            bit = Signal(name=f"c{c}_bit")
            m.d.comb += bit.eq((self.acc[c] >= self.params[c].threshold) ^ self.params[c].invert)
            m.d.sync += self.out[c].eq(bit)
        return m
