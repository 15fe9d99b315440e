"""After the array: the output stage (post-array step, requantizer or threshold compares,
column mask) and the result queue with its credits."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ._logic import delay, equals
from .buffers import address_bits, read_signature
from .command import context_signature
from .config import ArrayConfig, latencies
from .interfaces import par_layout, res_layout
from .pe import pe_arithmetic
from .requant import Requantizer
from .threshold import ThresholdUnit

__all__ = ["OutputStage", "ResultQueue", "credit_signature", "sums_layout"]


def sums_layout(config: ArrayConfig):
    """A finished row of column sums and the column tile it belongs to."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(config.acc_bits), config.cols),
        "nt": unsigned(max(address_bits(config.n_tiles), 1)),
    })


def credit_signature(config: ArrayConfig):
    """FIFO entries promised to results still in flight (the result queue's side).

    Members
    -------
    reserve : In(unsigned)
        Entries promised in this cycle (a row or a tile enters the array).
    reserved : Out(unsigned)
        Entries promised and not yet sent; at most ``out_depth - 1``.
    """
    depth = config.fifo_depth
    return wiring.Signature({"reserve": In(range(depth + 1)),
                             "reserved": Out(range(depth + 1))})


class OutputStage(wiring.Component):
    """A row of column sums in, a result beat out, after a fixed latency.

    The row is registered through the PE mode's post-array step while its channels'
    parameters are read; then the requantizer, the threshold compares or nothing
    (``hw.config.latencies(config).output_stage`` cycles); channels past N give 0.
    Every output stage sits behind the same two streams, which never stall.

    Members
    -------
    sums : In(stream.Signature(sums_layout, always_ready=True))
    ctx : In(context_signature)
    par_read : In(read_signature).array(cols)
        Only with an output stage that takes parameters: the parameter buffer's banks.
    result : Out(stream.Signature(res_layout, always_ready=True))
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        self._pe = pe_arithmetic(config)
        ports = {
            "sums": In(stream.Signature(sums_layout(config), always_ready=True)),
            "ctx": In(context_signature(config)),
        }
        if config.has_params:
            ports["par_read"] = In(read_signature(address_bits(config.n_tiles),
                                                  par_layout(config).size)).array(config.cols)
        ports["result"] = Out(stream.Signature(res_layout(config), always_ready=True))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg, cmd = self._config, self.ctx.cmd
        valid, acc, nt = self._post_array(m)
        stage = latencies(cfg).output_stage
        if cfg.requant:
            unit = m.submodules.requant = Requantizer(cfg)
            m.d.comb += [unit.out_zero_point.eq(cmd.out_zero_point),
                         unit.act_min.eq(cmd.act_min), unit.act_max.eq(cmd.act_max)]
        elif cfg.threshold:
            unit = m.submodules.threshold = ThresholdUnit(cfg)
        if cfg.has_params:
            m.d.comb += [unit.valid.eq(valid), unit.acc.eq(acc)]
            for c in range(cfg.cols):
                m.d.comb += unit.params[c].eq(self.par_read[c].data)
            valid, values = unit.out_valid, unit.out
            nt = delay(m, nt, stage, "out_nt")
        else:
            values = acc
        result = self.result.payload
        n0 = nt * cfg.cols
        for c in range(cfg.cols):
            m.d.comb += result[c].eq(Mux(n0 + c < cmd.n, values[c], 0))
        m.d.comb += self.result.valid.eq(valid)
        return m

    def _post_array(self, m):
        """Register the row through the post-array step; read its channels' parameters."""
        cfg = self._config
        sums = self.sums
        row_valid = Signal()
        row_acc = Signal(data.ArrayLayout(signed(cfg.acc_bits), cfg.cols))
        row_nt = Signal.like(sums.payload.nt)
        m.d.sync += [row_valid.eq(sums.valid), row_nt.eq(sums.payload.nt)]
        for c in range(cfg.cols):
            value = self._pe.post_array(sums.payload.acc[c], self.ctx.cmd.k)
            m.d.sync += row_acc[c].eq(value[:cfg.acc_bits])
        if cfg.has_params:
            for port in self.par_read:
                m.d.comb += port.addr.eq(sums.payload.nt[:address_bits(cfg.n_tiles)])
        return row_valid, row_acc, row_nt


class ResultQueue(wiring.Component):
    """The output FIFO and the count of entries promised to results in flight.

    A result is promised its entry when the row (weight-stationary) or tile
    (output-stationary) that produces it enters the array; at most ``out_depth - 1``
    promises are outstanding, which keeps the buffered FIFO's write side always ready, so
    the array never stalls.

    Members
    -------
    write : In(stream.Signature(res_layout, always_ready=True))
    credits : Out(credit_signature)
    idle : Out(1)
        No entry promised: every result reserved so far has been sent.
    res : Out(stream.Signature(res_layout))
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        super().__init__({
            "write": In(stream.Signature(res_layout(config), always_ready=True)),
            "credits": Out(credit_signature(config)),
            "idle": Out(1),
            "res": Out(stream.Signature(res_layout(config))),
        })

    @property
    def credit_limit(self):
        """The most entries promised at once."""
        return self._config.fifo_depth - 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        queue = m.submodules.fifo = fifo.SyncFIFOBuffered(width=res_layout(cfg).size,
                                                          depth=cfg.fifo_depth)
        reserved = self.credits.reserved
        sent = self.res.valid & self.res.ready
        m.d.comb += [
            queue.w_en.eq(self.write.valid),
            queue.w_data.eq(self.write.payload.as_value()),
            self.res.valid.eq(queue.r_rdy),
            self.res.payload.eq(queue.r_data),
            queue.r_en.eq(self.res.ready),
            self.idle.eq(equals(reserved, 0)),
        ]
        m.d.sync += reserved.eq(reserved + self.credits.reserve - sent)
        return m
