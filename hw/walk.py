"""The tile walk: which block of rows, which column tile and which K chunk comes next."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._logic import cleared_counter
from .buffers import advance_chunk, max_blocks
from .command import context_signature
from .config import ArrayConfig

__all__ = ["TileWalker", "plane_walk", "advance_plane"]


class TileWalker(wiring.Component):
    """Position in the walk over a GEMM's tiles: blocks of rows, then column tiles of
    ``cols`` channels (then, with ``chunks``, K chunks of ``rows`` PE words, innermost).

    The position moves one step in the cycle after ``advance``; after the last tile of
    the last block, ``done`` rises. Every position is 0 after a command starts.

    Parameters
    ----------
    config : ArrayConfig
    chunks : bool
        Walk K chunks too (weight-stationary); without, a tile covers all of K.
    name : str
        Prefix of the registers' names.

    Members
    -------
    ctx : In(context_signature)
    advance : In(1)
    block, mbase : Out(unsigned)
        Block index and its first row (a block is ``config.block`` rows).
    nt, n0 : Out(unsigned)
        Column tile and its first channel.
    kt, koff : Out(unsigned)
        K chunk and its first PE word (0 without ``chunks``).
    klast : Out(1)
        The K chunk is the last one (always without ``chunks``).
    done : Out(1)
        The walk is over.
    """

    def __init__(self, config: ArrayConfig, *, chunks, name):
        self._config = config
        self._chunks = chunks
        self._name = name
        size = lambda limit: range(max(limit, 1) + 1)  # noqa: E731 (one rule, four uses)
        super().__init__({
            "ctx": In(context_signature(config)),
            "advance": In(1),
            "block": Out(size(max_blocks(config))),
            "mbase": Out(size(config.max_m + config.block)),
            "nt": Out(size(config.n_tiles)),
            "n0": Out(size(config.n_tiles * config.cols)),
            "kt": Out(size(config.k_chunks)),
            "koff": Out(size(config.k_chunks * config.rows)),
            "klast": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ctx = self._config, self.ctx
        C, block = cfg.cols, cfg.block
        with m.If(ctx.start):
            m.d.sync += [self.block.eq(0), self.mbase.eq(0), self.nt.eq(0), self.n0.eq(0),
                         self.done.eq(0)]
            if self._chunks:
                m.d.sync += [self.kt.eq(0), self.koff.eq(0)]
        if self._chunks:
            m.d.comb += self.klast.eq(self.koff + cfg.rows >= ctx.k_words)
        else:
            m.d.comb += self.klast.eq(1)
        with m.If(self.advance):
            if self._chunks:
                advance_chunk(m, cfg, self.kt, self.koff, self.klast)
            with m.If(self.klast):
                with m.If(self.n0 + C >= ctx.cmd.n):
                    m.d.sync += [self.nt.eq(0), self.n0.eq(0), self.block.eq(self.block + 1),
                                 self.mbase.eq(self.mbase + block)]
                    with m.If(self.mbase + block >= ctx.cmd.m):
                        m.d.sync += self.done.eq(1)
                with m.Else():
                    m.d.sync += [self.nt.eq(self.nt + 1), self.n0.eq(self.n0 + C)]
        return m


def plane_walk(m, config, ctx, name, planes_field, bits):
    """Bit-plane counter 0..planes-1 of a bit-serial GEMM: ``(index, is_last)``.

    Other PE modes have one "plane": the index is 0 and every step is its last.
    """
    if not config.mode.has_planes:
        return Const(0, 1), Const(1, 1)
    plane = cleared_counter(m, ctx.start, name, max(bits - 1, 1))
    last = Signal(name=f"{name}_last")
    m.d.comb += last.eq(plane + 1 == getattr(ctx.cmd, planes_field))
    return plane, last


def advance_plane(m, config, plane, last):
    """Next bit plane, or plane 0 after the last one (nothing outside the bit-serial mode)."""
    if not config.mode.has_planes:
        return
    with m.If(last):
        m.d.sync += plane.eq(0)
    with m.Else():
        m.d.sync += plane.eq(plane + 1)
