"""The command decoder and the per-GEMM context it gives every other unit of the engine."""

from amaranth.hdl import Cat, Const, Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._logic import equals
from .config import ArrayConfig, ceil_log2
from .interfaces import cmd_layout
from .pe import pe_arithmetic

__all__ = ["CommandDecoder", "context_signature", "word_mask"]


def context_signature(config: ArrayConfig):
    """What every unit knows of the GEMM in progress (the decoder's side: all outputs).

    Members
    -------
    start : Out(1)
        A good command is taken in this cycle (every unit clears its counters).
    busy : Out(1)
        A GEMM is in progress (from the cycle after ``start`` until ``done``).
    cmd : Out(cmd_layout)
        The command, registered when it is taken.
    k_words : Out(unsigned)
        PE words along K, ``ceil(K / pack)`` (``K`` itself when ``pack`` is 1).
    k_last_mask : Out(pack)
        The valid elements of the last PE word along K (bit ``e`` for element ``e``).
    """
    layout = cmd_layout(config)
    if config.pack == 1:
        k_words = layout.members["k"]
    else:
        k_words = range(config.k_words + 1)
    return wiring.Signature({
        "start": Out(1), "busy": Out(1), "cmd": Out(layout),
        "k_words": Out(k_words), "k_last_mask": Out(config.pack),
    })


def word_mask(config, ctx, word):
    """Valid elements of PE word ``word`` along K: all, those of the last word, or none."""
    if config.pack == 1:
        return word < ctx.k_words
    full = Const((1 << config.pack) - 1, config.pack)
    return Mux(word + 1 < ctx.k_words, full, Mux(word + 1 == ctx.k_words, ctx.k_last_mask, 0))


class CommandDecoder(wiring.Component):
    """Takes a command while idle, refuses bad ones, and holds the GEMM's context.

    Parameters
    ----------
    config : ArrayConfig

    Members
    -------
    cmd : In(stream.Signature(cmd_layout))
        Ready exactly while idle.
    ctx : Out(context_signature)
        ``start`` is combinational (valid, idle and good); the rest are registers.
    done : In(1)
        Every tile was issued and every reserved result left: ``busy`` falls next cycle.
    error : Out(1)
        High after a refused command (a zero or over-limit size, bit planes out of range,
        ``act_min > act_max``); low again after the next good command.
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        self._pe = pe_arithmetic(config)
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(config))),
            "ctx": Out(context_signature(config)),
            "done": In(1),
            "error": Out(1),
        })

    def _refused(self, p):
        cfg = self._config
        bad = equals(p.m, 0) | equals(p.k, 0) | equals(p.n, 0)
        if (1 << len(p.m)) - 1 > cfg.max_m:
            bad |= p.m > cfg.max_m
        if (1 << len(p.k)) - 1 > cfg.max_k:
            bad |= p.k > cfg.max_k
        if (1 << len(p.n)) - 1 > cfg.max_n:
            bad |= p.n > cfg.max_n
        bad = self._pe.command_errors(p, bad)
        if cfg.requant:
            bad |= p.act_min > p.act_max
        return bad

    def elaborate(self, platform):
        m = Module()
        ctx, p = self.ctx, self.cmd.payload
        busy = ctx.busy
        m.d.comb += self.cmd.ready.eq(~busy)
        bad = self._refused(p)
        m.d.comb += ctx.start.eq(self.cmd.valid & ~busy & ~bad)
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += self.error.eq(bad)
            with m.If(~bad):
                m.d.sync += [ctx.cmd.eq(p), busy.eq(1)]
        self._decode_words(m, p)
        with m.If(busy & self.done):
            m.d.sync += busy.eq(0)
        return m

    def _decode_words(self, m, p):
        """K in PE words and the last word's valid elements, registered with the command."""
        cfg, ctx = self._config, self.ctx
        if cfg.pack == 1:
            m.d.comb += [ctx.k_words.eq(ctx.cmd.k), ctx.k_last_mask.eq(1)]
            return
        shift = ceil_log2(cfg.pack)
        tail = (p.k - 1)[:shift]                      # valid elements of the last word - 1
        with m.If(ctx.start):
            m.d.sync += [ctx.k_words.eq((p.k + cfg.pack - 1) >> shift),
                         # element 0 of the last word is always valid
                         ctx.k_last_mask.eq(Cat(Const(1, 1), *(Const(e, shift) <= tail
                                                              for e in range(1, cfg.pack))))]
