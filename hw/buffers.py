"""Operand buffers: activations (two blocks of A) and per-channel data (weights, parameters)."""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._logic import cleared_counter, equals
from .command import context_signature
from .config import ArrayConfig, ceil_log2
from .interfaces import act_layout

__all__ = ["ActivationBuffer", "ChannelBuffer", "act_read_signature", "address_bits",
           "channel_read_signature", "max_blocks", "read_signature", "status_signature"]


def address_bits(n):
    """Address bits for ``n`` entries (0 when one entry)."""
    return ceil_log2(max(1, n))


def max_blocks(config):
    """The most blocks of activation rows a GEMM can have."""
    return -(-config.max_m // config.block)


def _memory(width, bits):
    """A memory of ``2**bits`` words, at least two.

    A one-word memory would have a zero-width address, which Yosys writes as the
    descending range ``[-1:0]``; the second word is never addressed.
    """
    return Memory(shape=unsigned(width), depth=1 << max(bits, 1), init=[])


def read_signature(bits, width):
    """A synchronous read port of a buffer memory of ``2**bits`` words (the buffer's side).

    Members
    -------
    addr : In(max(bits, 1))
    data : Out(width)
        The word at the address of the previous cycle.
    """
    return wiring.Signature({"addr": In(max(bits, 1)), "data": Out(width)})


def _act_bits(config):
    kt_bits = address_bits(config.k_chunks)
    if config.dataflow == "ws":
        return 1 + address_bits(config.block) + kt_bits
    return 1 + kt_bits


def act_read_signature(config):
    """One read port of the activation buffer (the buffer's side)."""
    return read_signature(_act_bits(config), act_layout(config).size)


def _channel_bits(config, per_channel_words):
    kt_bits = address_bits(config.k_chunks) if per_channel_words else 0
    return address_bits(config.n_tiles) + kt_bits


def channel_read_signature(config, layout, *, per_channel_words):
    """One bank's read port of a channel buffer (the buffer's side)."""
    return read_signature(_channel_bits(config, per_channel_words), layout.size)


def status_signature(config):
    """How far a channel buffer has loaded (the buffer's side).

    Members
    -------
    tiles : Out(unsigned)
        Column tiles (``cols`` channels each) completely loaded.
    all_in : Out(1)
        Every channel of the GEMM is loaded (the last column tile may be partial).
    """
    return wiring.Signature({"tiles": Out(range(max(config.n_tiles, 1) + 1)),
                             "all_in": Out(1)})


def chunk_walk(m, config, start, k_words, prefix):
    """K-chunk counter: ``(index, offset, is_last)``; offset = index * rows, in PE words."""
    kt = cleared_counter(m, start, f"{prefix}_kt", config.k_chunks)
    koff = cleared_counter(m, start, f"{prefix}_koff", config.k_chunks * config.rows)
    last = Signal(name=f"{prefix}_klast")
    m.d.comb += last.eq(koff + config.rows >= k_words)
    return kt, koff, last


def advance_chunk(m, config, kt, koff, last):
    """Next chunk, or chunk 0 after the last one."""
    with m.If(last):
        m.d.sync += [kt.eq(0), koff.eq(0)]
    with m.Else():
        m.d.sync += [kt.eq(kt + 1), koff.eq(koff + config.rows)]


class ActivationBuffer(wiring.Component):
    """Rows of A into a buffer of two blocks; a block is refilled once it is used.

    Weight-stationary: one memory, one word per (block half, row in block, K chunk).
    Output-stationary: one memory per row of the block (the array reads a column of the
    block per step), one word per (block half, K chunk).

    Members
    -------
    act : In(stream.Signature(act_layout))
    ctx : In(context_signature)
    used_blocks : In(unsigned)
        Blocks the sequencer has finished with; block ``b`` goes into half ``b % 2`` once
        block ``b - 2`` is finished.
    blocks : Out(unsigned)
        Blocks completely loaded.
    read : Out(read_signature).array(ports)
        One port (weight-stationary) or ``rows`` ports (output-stationary, one per row).
    """

    def __init__(self, config: ArrayConfig):
        self._config = config
        self._bits = _act_bits(config)
        ports = 1 if config.dataflow == "ws" else config.rows
        counts = range(max(max_blocks(config), 1) + 1)
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "ctx": In(context_signature(config)),
            "used_blocks": In(range(max_blocks(config) + 1)),
            "blocks": Out(counts),
            "read": Out(act_read_signature(config)).array(ports),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ctx = self._config, self.ctx
        start = ctx.start
        row = cleared_counter(m, start, "ld_row", cfg.max_m)
        row_in_block = cleared_counter(m, start, "ld_mloc", cfg.block)
        blocks = self.blocks
        with m.If(start):
            m.d.sync += blocks.eq(0)
        kt, koff, klast = chunk_walk(m, cfg, start, ctx.k_words, "ld")
        ready = ctx.busy & (row < ctx.cmd.m) & (blocks < self.used_blocks + 2)
        m.d.comb += self.act.ready.eq(ready)
        take = self.act.valid & ready
        half = blocks[0]
        kt_bits = address_bits(cfg.k_chunks)
        width = act_layout(cfg).size
        if cfg.dataflow == "ws":
            addrs = [(Cat(kt[:kt_bits], row_in_block[:address_bits(cfg.block)], half), take)]
        else:
            addrs = [(Cat(kt[:kt_bits], half), take & equals(row_in_block, j))
                     for j in range(cfg.rows)]
        for j, (addr, enable) in enumerate(addrs):
            mem = m.submodules[f"mem{j}"] = _memory(width, self._bits)
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(self.act.payload.as_value()),
                         wp.en.eq(enable)]
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.read[j].addr), self.read[j].data.eq(rp.data)]
        with m.If(take):
            advance_chunk(m, cfg, kt, koff, klast)
            with m.If(klast):
                m.d.sync += row.eq(row + 1)
                with m.If(equals(row_in_block, cfg.block - 1) | (row + 1 == ctx.cmd.m)):
                    m.d.sync += [row_in_block.eq(0), blocks.eq(blocks + 1)]
                with m.Else():
                    m.d.sync += row_in_block.eq(row_in_block + 1)
        return m


class ChannelBuffer(wiring.Component):
    """N channels (weights or parameters) into ``cols`` banks: bank = channel % cols.

    Parameters
    ----------
    config : ArrayConfig
    layout : data.Layout
        One beat of the stream.
    per_channel_words : bool
        A channel is ``ceil(K / (rows * pack))`` beats (weights) or one beat (parameters).
    name : str
        Prefix of the counters' names.

    Members
    -------
    data : In(stream.Signature(layout))
    ctx : In(context_signature)
    status : Out(status_signature)
    read : Out(read_signature).array(cols)
        Bank ``c``: word ``(column tile, K chunk)`` of channel ``column tile * cols + c``.
    """

    def __init__(self, config: ArrayConfig, layout, *, per_channel_words, name):
        self._config = config
        self._layout = layout
        self._per_channel_words = per_channel_words
        self._name = name
        self._bits = _channel_bits(config, per_channel_words)
        super().__init__({
            "data": In(stream.Signature(layout)),
            "ctx": In(context_signature(config)),
            "status": Out(status_signature(config)),
            "read": Out(channel_read_signature(
                config, layout, per_channel_words=per_channel_words)).array(config.cols),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ctx, name = self._config, self.ctx, self._name
        start = ctx.start
        nt_bits = address_bits(cfg.n_tiles)
        n_done = cleared_counter(m, start, f"{name}_n", cfg.max_n)
        col = cleared_counter(m, start, f"{name}_col", cfg.cols)
        tiles = self.status.tiles
        with m.If(start):
            m.d.sync += tiles.eq(0)
        ready = ctx.busy & (n_done < ctx.cmd.n)
        m.d.comb += self.data.ready.eq(ready)
        take = self.data.valid & ready
        if self._per_channel_words:
            kt, koff, klast = chunk_walk(m, cfg, start, ctx.k_words, name)
            kt_bits = address_bits(cfg.k_chunks)
        else:
            kt, klast, kt_bits = Const(0, 1), Const(1, 1), 0
        for c in range(cfg.cols):
            mem = m.submodules[f"mem{c}"] = _memory(self._layout.size, self._bits)
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(Cat(kt[:kt_bits], tiles[:nt_bits])),
                         wp.data.eq(self.data.payload.as_value()),
                         wp.en.eq(take & equals(col, c))]
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.read[c].addr), self.read[c].data.eq(rp.data)]
        with m.If(take):
            if self._per_channel_words:
                advance_chunk(m, cfg, kt, koff, klast)
            with m.If(klast):
                m.d.sync += n_done.eq(n_done + 1)
                with m.If(equals(col, cfg.cols - 1)):
                    m.d.sync += [col.eq(0), tiles.eq(tiles + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
        m.d.comb += self.status.all_in.eq(n_done == ctx.cmd.n)
        return m
