"""Each unit of the engine on its own in Amaranth's simulator: its ports and its timing."""

import itertools

import pytest
from amaranth.sim import Simulator

from hw.buffers import ActivationBuffer, ChannelBuffer, address_bits
from hw.command import CommandDecoder
from hw.config import STAGE_LATENCY, ArrayConfig, latencies
from hw.interfaces import act_layout, cmd_layout, par_layout, wgt_layout
from hw.output import OutputStage, ResultQueue
from hw.sequencer import OSSequencer, WSSequencer
from hw.walk import TileWalker


def run(dut, bench):
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()


def gemm_context(ctx, unit, config, m, k_words, n):
    """Drive a unit's ``ctx`` as the decoder would: ``start`` for one cycle, then busy."""
    unit_ctx = unit.ctx
    fields = {"m": m, "k": k_words * config.pack, "n": n}
    if config.requant:
        fields.update(act_min=-128, act_max=127)
    ctx.set(unit_ctx.cmd, cmd_layout(config).const(fields))
    ctx.set(unit_ctx.k_words, k_words)
    ctx.set(unit_ctx.k_last_mask, (1 << config.pack) - 1)
    ctx.set(unit_ctx.start, 1)


async def begin(ctx, unit, config, m, k_words, n):
    gemm_context(ctx, unit, config, m, k_words, n)
    await ctx.tick()
    ctx.set(unit.ctx.start, 0)
    ctx.set(unit.ctx.busy, 1)


# ---- command decoder ---------------------------------------------------------------------

def test_command_decoder_takes_a_good_command_and_holds_it_until_done():
    config = ArrayConfig(rows=2, cols=2)
    dut = CommandDecoder(config)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.cmd.payload, cmd_layout(config).const({"m": 3, "k": 5, "n": 2}))
        ctx.set(dut.cmd.valid, 1)
        seen["ready_idle"] = ctx.get(dut.cmd.ready)
        seen["start"] = ctx.get(dut.ctx.start)
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        seen["busy"] = ctx.get(dut.ctx.busy)
        seen["ready_busy"] = ctx.get(dut.cmd.ready)
        seen["m"], seen["k"], seen["n"] = (ctx.get(dut.ctx.cmd.m), ctx.get(dut.ctx.cmd.k),
                                           ctx.get(dut.ctx.cmd.n))
        seen["k_words"] = ctx.get(dut.ctx.k_words)
        seen["error"] = ctx.get(dut.error)
        for _ in range(3):                      # busy until done, whatever the stream does
            ctx.set(dut.cmd.valid, 1)
            assert ctx.get(dut.ctx.start) == 0
            await ctx.tick()
        assert ctx.get(dut.ctx.busy) == 1
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.done, 1)
        await ctx.tick()
        seen["busy_after_done"] = ctx.get(dut.ctx.busy)

    run(dut, bench)
    assert seen == {"ready_idle": 1, "start": 1, "busy": 1, "ready_busy": 0, "m": 3, "k": 5,
                    "n": 2, "k_words": 5, "error": 0, "busy_after_done": 0}


@pytest.mark.parametrize("fields", [{"m": 0, "k": 1, "n": 1}, {"m": 1, "k": 0, "n": 1},
                                    {"m": 1, "k": 1, "n": 0}, {"m": 1, "k": 17, "n": 1},
                                    {"m": 1, "k": 1, "n": 1, "act_min": 5, "act_max": 4}])
def test_command_decoder_refuses_a_bad_command(fields):
    config = ArrayConfig(rows=2, cols=2, max_k=16)
    dut = CommandDecoder(config)

    async def bench(ctx):
        ctx.set(dut.cmd.payload, cmd_layout(config).const(fields))
        ctx.set(dut.cmd.valid, 1)
        assert ctx.get(dut.cmd.ready) == 1      # taken (and dropped), not left waiting
        assert ctx.get(dut.ctx.start) == 0
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        assert (ctx.get(dut.error), ctx.get(dut.ctx.busy)) == (1, 0)
        ctx.set(dut.cmd.payload, cmd_layout(config).const({"m": 1, "k": 1, "n": 1}))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick()
        assert (ctx.get(dut.error), ctx.get(dut.ctx.busy)) == (0, 1)

    run(dut, bench)


@pytest.mark.parametrize(("k", "words", "mask"), [(1, 1, 0b0001), (4, 1, 0b1111),
                                                  (10, 3, 0b0011), (11, 3, 0b0111)])
def test_command_decoder_counts_packed_words(k, words, mask):
    config = ArrayConfig(rows=2, cols=2, pe_mode="xnor", pack=4, threshold=True)
    dut = CommandDecoder(config)

    async def bench(ctx):
        ctx.set(dut.cmd.payload, cmd_layout(config).const({"m": 1, "k": k, "n": 1}))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick()
        assert (ctx.get(dut.ctx.k_words), ctx.get(dut.ctx.k_last_mask)) == (words, mask)

    run(dut, bench)


# ---- tile walker -------------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [True, False])
def test_tile_walker_walks_blocks_then_column_tiles_then_chunks(chunks):
    config = ArrayConfig(rows=2, cols=2, block_rows=4)
    m, k_words, n = 9, 5, 3
    dut = TileWalker(config, chunks=chunks, name="walk")
    k_chunks = -(-k_words // config.rows) if chunks else 1
    expected = list(itertools.product(range(-(-m // 4)), range(-(-n // 2)), range(k_chunks)))
    seen = []

    async def bench(ctx):
        await begin(ctx, dut, config, m, k_words, n)
        for t in range(2 * len(expected) + 4):
            advance = t % 2 == 0                  # every other cycle: the walk waits
            ctx.set(dut.advance, advance)
            if advance and not ctx.get(dut.done):
                seen.append((ctx.get(dut.block), ctx.get(dut.nt), ctx.get(dut.kt)))
                b, nt, kt = seen[-1]
                assert (ctx.get(dut.mbase), ctx.get(dut.n0)) == (4 * b, 2 * nt)
                assert ctx.get(dut.koff) == 2 * kt
                assert ctx.get(dut.klast) == (kt == k_chunks - 1)
            await ctx.tick()
        assert ctx.get(dut.done) == 1

    run(dut, bench)
    assert seen == expected


# ---- operand buffers ---------------------------------------------------------------------

def test_activation_buffer_holds_two_blocks_and_waits_for_the_sequencer():
    config = ArrayConfig(rows=2, cols=2, block_rows=2, max_k=16)
    m, k_words = 5, 3                 # 2 beats per row; blocks of 2, 2 and 1 rows
    dut = ActivationBuffer(config)
    taken = []

    async def bench(ctx):
        await begin(ctx, dut, config, m, k_words, 1)
        ctx.set(dut.act.valid, 1)
        for t in range(30):
            ctx.set(dut.act.payload, [t % 100, (t + 1) % 100])
            ctx.set(dut.used_blocks, 0 if t < 20 else 1)
            if ctx.get(dut.act.ready):
                taken.append(t)
            await ctx.tick()
        assert ctx.get(dut.blocks) == 3
        # Row 1 of block 0, chunk 1: the fourth beat taken (written into half 0).
        ctx.set(dut.read[0].addr, 1 | 1 << address_bits(config.k_chunks))
        await ctx.tick()
        beat = act_layout(config).const([taken[3] % 100, (taken[3] + 1) % 100])
        assert ctx.get(dut.read[0].data) == beat.as_value().value

    run(dut, bench)
    # Two blocks (8 beats) at once, then nothing until block 0 is used, then block 2.
    assert taken == list(range(8)) + [20, 21]


def test_channel_buffer_reports_column_tiles_and_reads_by_bank():
    config = ArrayConfig(rows=2, cols=2, max_k=16)
    n, k_words = 3, 3                 # 2 beats per channel; tiles of channels {0, 1}, {2}
    layout = wgt_layout(config)
    dut = ChannelBuffer(config, layout, per_channel_words=True, name="wl")
    status = []

    async def bench(ctx):
        await begin(ctx, dut, config, 1, k_words, n)
        ctx.set(dut.data.valid, 1)
        for t in range(8):
            ctx.set(dut.data.payload, layout.const([t, -t]))
            status.append((ctx.get(dut.data.ready), ctx.get(dut.status.tiles),
                           ctx.get(dut.status.all_in)))
            await ctx.tick()
        # Channel 1 (bank 1, tile 0), chunk 1: the fourth beat.
        ctx.set(dut.read[1].addr, 0b0_1)
        await ctx.tick()
        assert ctx.get(dut.read[1].data) == layout.const([3, -3]).as_value().value

    run(dut, bench)
    assert [ready for ready, _, _ in status] == [1] * 6 + [0] * 2
    assert [tiles for _, tiles, _ in status] == [0] * 4 + [1] * 2 + [1] * 2
    assert [all_in for _, _, all_in in status] == [0] * 6 + [1] * 2


# ---- output stage and result queue -------------------------------------------------------

@pytest.mark.parametrize("fields", [dict(requant=False), dict(threshold=True), dict()],
                         ids=["raw", "threshold", "requant"])
def test_output_stage_latency_and_column_mask(fields):
    config = ArrayConfig(rows=2, cols=3, **fields)
    dut = OutputStage(config)
    stage = latencies(config).output_stage
    seen = []

    async def bench(ctx):
        await begin(ctx, dut, config, 1, 1, 4)       # N = 4: tile 1 has one channel
        if config.has_params:
            params = ({"threshold": 0, "invert": 0} if config.threshold
                      else {"bias": 0, "m0": 1 << 30, "shift": 1})   # x * 2 * 0.5 = x
            for c in range(config.cols):
                ctx.set(dut.par_read[c].data, par_layout(config).const(params))
        for t in range(stage + 4):
            ctx.set(dut.sums.valid, t == 0)
            ctx.set(dut.sums.payload.acc, [5, -7, 9])
            ctx.set(dut.sums.payload.nt, 1)
            if config.has_params and t == 0:
                assert [ctx.get(p.addr) for p in dut.par_read] == [1] * config.cols
            seen.append((ctx.get(dut.result.valid), list(ctx.get(dut.result.payload))))
            await ctx.tick()

    run(dut, bench)
    valid = [v for v, _ in seen]
    assert valid == [0] * (1 + stage) + [1] + [0] * (len(seen) - 2 - stage)
    expected = [1, 0, 0] if config.threshold else [5, 0, 0]   # channels 4 and 5: none
    assert seen[1 + stage][1] == expected


def test_result_queue_credits_and_fifo_latency():
    config = ArrayConfig(rows=2, cols=2, out_depth=4)
    dut = ResultQueue(config)
    log = []

    async def bench(ctx):
        ctx.set(dut.res.ready, 0)
        ctx.set(dut.credits.reserve, 3)
        assert ctx.get(dut.idle) == 1
        await ctx.tick()
        ctx.set(dut.credits.reserve, 0)
        assert (ctx.get(dut.credits.reserved), ctx.get(dut.idle)) == (3, 0)
        ctx.set(dut.write.valid, 1)
        ctx.set(dut.write.payload, [7, -8])
        await ctx.tick()
        ctx.set(dut.write.valid, 0)
        for _ in range(4):
            log.append(ctx.get(dut.res.valid))
            await ctx.tick()
        ctx.set(dut.res.ready, 1)
        assert list(ctx.get(dut.res.payload)) == [7, -8]
        await ctx.tick()
        assert ctx.get(dut.credits.reserved) == 2    # one result sent
        assert ctx.get(dut.res.valid) == 0

    run(dut, bench)
    # Written in cycle w, the beat can be taken from cycle w + 2 (the table's FIFO latency).
    assert log.index(1) + 1 == STAGE_LATENCY["fifo"]


# ---- sequencers --------------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_sequencer_reserves_one_credit_per_result_row_and_finishes(dataflow):
    config = ArrayConfig(rows=2, cols=2, block_rows=4 if dataflow == "ws" else None,
                         dataflow=dataflow, max_k=16, out_depth=8)
    m, k_words, n = 5, 3, 3
    rows_out = m * -(-n // config.cols)
    blocks = -(-m // config.block)
    dut = WSSequencer(config) if dataflow == "ws" else OSSequencer(config)
    reserved = sums = 0
    finished = None

    async def bench(ctx):
        nonlocal reserved, sums, finished
        await begin(ctx, dut, config, m, k_words, n)
        ctx.set(dut.act_blocks, 0)
        for _ in range(5):                           # no activations: nothing enters
            assert ctx.get(dut.credits.reserve) == 0
            await ctx.tick()
        ctx.set(dut.act_blocks, 2)
        ctx.set(dut.wgt_status.all_in, 1)
        ctx.set(dut.par_status.all_in, 1)
        outstanding = 0
        for t in range(400):
            ctx.set(dut.act_blocks, min(2 + ctx.get(dut.block), blocks))
            ctx.set(dut.credits.reserved, outstanding)
            reserve = ctx.get(dut.credits.reserve)
            assert outstanding + reserve <= config.fifo_depth - 1
            reserved += reserve
            sums += ctx.get(dut.sums.valid)
            outstanding += reserve - ctx.get(dut.sums.valid)
            if finished is None and ctx.get(dut.issued_all):
                finished = t
            await ctx.tick()

    run(dut, bench)
    assert reserved == rows_out
    assert sums == rows_out
    assert finished is not None
