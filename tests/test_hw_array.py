"""``WSArray`` and ``OSArray`` alone in Amaranth's simulator: documented timing and values.

The timing under test is the one of the arrays' docstrings:

* weight-stationary: a vector presented in cycle ``T`` gives its deskewed column sums on
  ``psum`` in cycle ``T + rows + cols - 1``; it meets PE ``(r, c)`` in cycle ``T + r + c``
  and uses the weight that PE holds then; a weight load in cycle ``L`` is used from cycle
  ``L + 1``;
* output-stationary: if a tile's last step is presented in cycle ``T``, output row ``j`` of
  the tile is on ``result`` in cycle ``T + rows + cols + j``; last steps of two tiles are at
  least ``rows`` cycles apart.

Values are compared with numpy dot products, wrapped to ``acc_bits``.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

import golden
from hw.array import OSArray, WSArray
from hw.config import ArrayConfig


def cfg(rows, cols, **fields):
    return ArrayConfig(rows=rows, cols=cols, **fields)


def operand_ranges(config):
    """Port ranges: the activation (zero point already subtracted) is ``a_bits + 1`` signed."""
    a = (-(1 << config.a_bits), (1 << config.a_bits) - 1)
    return a, golden.qrange(config.w_bits, config.w_signed)


def run(dut, cycles, drive, sample):
    """Call ``drive(ctx, t)`` then ``sample(ctx, t)`` in every cycle ``t``, then tick."""
    async def bench(ctx):
        for t in range(cycles):
            drive(ctx, t)
            sample(ctx, t)
            await ctx.tick()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# --- weight-stationary ----------------------------------------------------------------------

def simulate_ws(config, a, bank, load, load_bank, load_data):
    """Drive ``T`` cycles of inputs (zeros afterwards); return ``psum`` of every cycle.

    ``a``: (T, rows); ``bank``, ``load``, ``load_bank``: (T,); ``load_data``: (T, cols, rows),
    ``load_data[t][c][r]`` the weight of PE ``(r, c)``.
    """
    dut = WSArray(config)
    rows, cols = config.rows, config.cols
    n = len(a)
    cycles = n + rows + cols
    psum = np.zeros((cycles, cols), dtype=np.int64)

    def drive(ctx, t):
        live = t < n
        ctx.set(dut.a, [int(v) for v in a[t]] if live else [0] * rows)
        ctx.set(dut.bank, int(bank[t]) if live else 0)
        ctx.set(dut.load, int(load[t]) if live else 0)
        ctx.set(dut.load_bank, int(load_bank[t]) if live else 0)
        ctx.set(dut.load_data, [[int(w) for w in col] for col in load_data[t]] if live
                else [[0] * rows for _ in range(cols)])

    def sample(ctx, t):
        value = ctx.get(dut.psum)
        psum[t] = [value[c] for c in range(cols)]

    run(dut, cycles, drive, sample)
    return psum


def ws_reference(config, a, bank, load, load_bank, load_data):
    """``psum`` per cycle from the documented timing, by brute force.

    Bank ``b`` of PE ``(r, c)`` during cycle ``t`` holds the last load of bank ``b`` in a
    cycle before ``t`` (0 before any). Vector ``T`` meets PE ``(r, c)`` in cycle ``T + r + c``
    and leaves on ``psum`` in cycle ``T + rows + cols - 1``; no vector (zeros) before cycle 0.
    """
    rows, cols = config.rows, config.cols
    n = len(a)
    latency = rows + cols - 1
    cycles = n + rows + cols
    held = np.zeros((2, cycles + latency + 1, cols, rows), dtype=np.int64)
    current = np.zeros((2, cols, rows), dtype=np.int64)
    for t in range(cycles + latency + 1):
        held[:, t] = current
        if t < n and load[t]:
            current[load_bank[t]] = load_data[t]
    psum = np.zeros((cycles, cols), dtype=np.int64)
    for t in range(latency, cycles):
        T = t - latency
        if T >= n:
            continue
        for c in range(cols):
            psum[t, c] = sum(int(a[T][r]) * int(held[bank[T], T + r + c, c, r])
                             for r in range(rows))
    return golden.wrap(psum, config.acc_bits)


def check_ws_stream(config, rng, vectors=24):
    """Double buffering as the engine uses it, against plain numpy dot products.

    Bank 0 is loaded in cycle 0 and used from cycle 1; bank 1 is loaded while bank 0's
    vectors stream and used from the cycle after its load; bank 0 is reloaded once its last
    vector has passed every PE, and used from the next cycle.
    """
    rows, cols = config.rows, config.cols
    (a_lo, a_hi), (w_lo, w_hi) = operand_ranges(config)
    weights = [rng.integers(w_lo, w_hi + 1, size=(rows, cols)) for _ in range(3)]
    half = vectors // 2
    # Phase 1: cycles 1..half on bank 0 (W0); bank 1 loaded with W1 in cycle half.
    # Phase 2: cycles half+1..2*half on bank 1; bank 0 reloaded (W2) once vector `half` (the
    # last on bank 0, issued in cycle half) has left PE (rows-1, cols-1), i.e. in cycle
    # half + rows + cols - 2 + 1 at the earliest, here the last cycle of phase 2.
    # Phase 3: the next cycles on bank 0 (W2).
    reload = max(half + rows + cols - 1, 2 * half)
    n = reload + 1 + half
    a = rng.integers(a_lo, a_hi + 1, size=(n, rows))
    bank = np.zeros(n, dtype=np.int64)
    load = np.zeros(n, dtype=np.int64)
    load_bank = np.zeros(n, dtype=np.int64)
    load_data = rng.integers(w_lo, w_hi + 1, size=(n, cols, rows))  # garbage unless `load`
    which = np.full(n, -1)
    load[0], load_bank[0], load_data[0] = 1, 0, weights[0].T
    load[half], load_bank[half], load_data[half] = 1, 1, weights[1].T
    load[reload], load_bank[reload], load_data[reload] = 1, 0, weights[2].T
    which[1:half + 1] = 0
    bank[half + 1:reload + 1] = 1
    which[half + 1:2 * half + 1] = 1
    which[reload + 1:] = 2
    psum = simulate_ws(config, a, bank, load, load_bank, load_data)
    latency = rows + cols - 1
    for T in range(n):
        if which[T] < 0:
            continue
        expected = golden.wrap(a[T] @ weights[which[T]], config.acc_bits)
        assert psum[T + latency].tolist() == expected.tolist(), (
            f"vector {T} (weights W{which[T]}): psum in cycle {T + latency}")
    # The whole trace, every cycle, against the documented timing.
    assert psum.tolist() == ws_reference(config, a, bank, load, load_bank, load_data).tolist()


def check_ws_random(config, rng, cycles=40):
    """Random loads of random banks in random cycles, every cycle against the timing model."""
    rows, cols = config.rows, config.cols
    (a_lo, a_hi), (w_lo, w_hi) = operand_ranges(config)
    a = rng.integers(a_lo, a_hi + 1, size=(cycles, rows))
    bank = rng.integers(0, 2, size=cycles)
    load = (rng.random(cycles) < 0.3).astype(np.int64)
    load_bank = rng.integers(0, 2, size=cycles)
    load_data = rng.integers(w_lo, w_hi + 1, size=(cycles, cols, rows))
    psum = simulate_ws(config, a, bank, load, load_bank, load_data)
    expected = ws_reference(config, a, bank, load, load_bank, load_data)
    bad = np.argwhere(psum != expected)
    assert not bad.size, f"first mismatch: cycle {bad[0][0]} column {bad[0][1]}"


WS_SHAPES = [(1, 1), (1, 4), (4, 1), (3, 5), (2, 2)]


@pytest.mark.parametrize(("rows", "cols"), WS_SHAPES)
def test_ws_stream(rows, cols, rng):
    check_ws_stream(cfg(rows, cols), rng)


@pytest.mark.parametrize(("rows", "cols"), WS_SHAPES)
def test_ws_random_loads(rows, cols, rng):
    check_ws_random(cfg(rows, cols), rng)


def test_ws_narrow_accumulator_wraps(rng):
    # acc_bits 10 is narrower than one a8w8 product: sums wrap modulo 2**10.
    check_ws_stream(cfg(3, 2, acc_bits=10), rng)
    check_ws_random(cfg(2, 3, acc_bits=10), rng)


def test_ws_unsigned_weights_and_narrow_operands(rng):
    check_ws_stream(cfg(2, 3, a_bits=4, a_signed=False, w_bits=6, w_signed=False), rng)


def test_ws_sixteen_bit_operands(rng):
    check_ws_stream(cfg(2, 2, a_bits=16, w_bits=16), rng)


def test_ws_extreme_operands():
    # Most negative activation port value times most negative weight, in every PE.
    config = cfg(3, 2)
    a = np.full((6, 3), -256)
    load = np.array([1, 0, 0, 0, 0, 0])
    load_data = np.full((6, 2, 3), -128)
    psum = simulate_ws(config, a, np.zeros(6, int), load, np.zeros(6, int), load_data)
    # Vector 0 met PE (0, 0) in the loading cycle (old weight 0); later vectors see -128.
    latency = 3 + 2 - 1
    assert psum[latency + 1].tolist() == [3 * 256 * 128] * 2
    assert psum[latency].tolist() == [2 * 256 * 128, 3 * 256 * 128]


def test_ws_load_usable_next_cycle():
    # A load in cycle L takes effect at the end of cycle L: PE (r, c) uses it for vectors
    # that meet it in cycle L + 1 or later, i.e. vectors presented from L + 1 - r - c on.
    config = cfg(2, 2)
    n = 4
    a = np.ones((n, 2), dtype=np.int64)
    load = np.array([1, 0, 1, 0])
    load_data = np.zeros((n, 2, 2), dtype=np.int64)
    load_data[0] = [[1, 2], [3, 4]]        # [column][row]: PE (r, c) gets load_data[c][r]
    load_data[2] = [[10, 20], [30, 40]]
    psum = simulate_ws(config, a, np.zeros(n, int), load, np.zeros(n, int), load_data)
    latency = 3
    # Vector 0 meets PE (0, 0) in the cycle of the first load: the old weight 0 there.
    assert psum[0 + latency].tolist() == [0 + 2, 3 + 4]
    # Vector 1 meets PE (1, 1) in cycle 3, after the second load (cycle 2): 40.
    assert psum[1 + latency].tolist() == [1 + 2, 3 + 40]
    # Vector 2 meets PE (0, 0) in cycle 2 (old 1), PE (1, 0) and PE (0, 1) in cycle 3 (new).
    assert psum[2 + latency].tolist() == [1 + 20, 30 + 40]
    # Vector 3, presented the cycle after the load, sees only new weights.
    assert psum[3 + latency].tolist() == [10 + 20, 30 + 40]


# --- output-stationary ----------------------------------------------------------------------

def simulate_os(config, schedule):
    """Drive ``schedule`` (one entry per cycle); return ``result`` of every cycle.

    An entry is ``None`` (a gap: valid low, garbage operands) or ``(a, w, first, last)``.
    """
    dut = OSArray(config)
    rows, cols = config.rows, config.cols
    cycles = len(schedule) + 2 * rows + cols + 1
    result = np.zeros((cycles, cols), dtype=np.int64)
    garbage = np.random.default_rng(len(schedule))
    (a_lo, a_hi), (w_lo, w_hi) = operand_ranges(config)

    def drive(ctx, t):
        step = schedule[t] if t < len(schedule) else None
        if step is None:
            ctx.set(dut.a, [int(v) for v in garbage.integers(a_lo, a_hi + 1, size=rows)])
            ctx.set(dut.w, [int(v) for v in garbage.integers(w_lo, w_hi + 1, size=cols)])
            ctx.set(dut.valid, 0)
            ctx.set(dut.first, 0)
            ctx.set(dut.last, 0)
        else:
            a, w, first, last = step
            ctx.set(dut.a, [int(v) for v in a])
            ctx.set(dut.w, [int(v) for v in w])
            ctx.set(dut.valid, 1)
            ctx.set(dut.first, int(first))
            ctx.set(dut.last, int(last))

    def sample(ctx, t):
        value = ctx.get(dut.result)
        result[t] = [value[c] for c in range(cols)]

    run(dut, cycles, drive, sample)
    return result


def check_os(config, rng, tiles, gaps_in_tile=0.0, spacing=None):
    """Tiles of ``k`` steps each (``tiles`` is a list of k); last steps exactly ``spacing``
    (default ``rows``) cycles apart when the steps allow it, else back to back.

    Every row of every tile is compared with ``A_tile @ W_tile`` in its documented cycle.
    """
    rows, cols = config.rows, config.cols
    spacing = rows if spacing is None else spacing
    (a_lo, a_hi), (w_lo, w_hi) = operand_ranges(config)
    schedule, expected = [], []
    last_cycle = None
    for k in tiles:
        a = rng.integers(a_lo, a_hi + 1, size=(rows, k))    # a[j, step]
        w = rng.integers(w_lo, w_hi + 1, size=(k, cols))
        steps = []
        for s in range(k):
            steps.append((a[:, s], w[s], s == 0, s == k - 1))
            if s < k - 1 and rng.random() < gaps_in_tile:
                steps.append(None)
        # Pad before the tile so that its last step comes `spacing` cycles after the last one.
        if last_cycle is not None:
            wait = last_cycle + spacing - (len(schedule) + len(steps) - 1)
            schedule.extend([None] * max(wait, 0))
        schedule.extend(steps)
        last_cycle = len(schedule) - 1
        expected.append((last_cycle, golden.wrap(a @ w, config.acc_bits)))
    result = simulate_os(config, schedule)
    for i, (T, sums) in enumerate(expected):
        for j in range(rows):
            cycle = T + rows + cols + j
            assert result[cycle].tolist() == sums[j].tolist(), (
                f"tile {i} (last step in cycle {T}), row {j}: expected in cycle {cycle}")


OS_SHAPES = [(1, 1), (1, 4), (4, 1), (3, 5), (2, 2)]


@pytest.mark.parametrize(("rows", "cols"), OS_SHAPES)
def test_os_tiles_rows_apart(rows, cols, rng):
    # Short tiles padded to the minimum spacing, longer ones back to back, and k = 1.
    check_os(cfg(rows, cols, dataflow="os"), rng, [1, rows, 3, rows + 2, 1, 1, 2 * rows + 1])


@pytest.mark.parametrize(("rows", "cols"), OS_SHAPES)
def test_os_gaps_within_tiles(rows, cols, rng):
    check_os(cfg(rows, cols, dataflow="os"), rng, [5, 1, 4, 7], gaps_in_tile=0.4)


@pytest.mark.parametrize(("rows", "cols"), [(3, 5), (2, 2)])
def test_os_tiles_far_apart(rows, cols, rng):
    check_os(cfg(rows, cols, dataflow="os"), rng, [2, 3, 1], spacing=3 * rows + cols + 4)


def test_os_narrow_accumulator_wraps(rng):
    check_os(cfg(3, 2, dataflow="os", acc_bits=10), rng, [6, 1, 9])


def test_os_unsigned_weights_and_narrow_operands(rng):
    check_os(cfg(2, 3, dataflow="os", a_bits=4, a_signed=False, w_bits=6, w_signed=False),
             rng, [4, 2, 5])


def test_os_sixteen_bit_operands(rng):
    check_os(cfg(2, 2, dataflow="os", a_bits=16, w_bits=16), rng, [3, 5, 1])


def test_os_first_restarts_the_sum():
    # Two single-step tiles: the second must not include the first's product.
    config = cfg(2, 1, dataflow="os")
    schedule = [([1, 2], [3], True, True), None, ([5, 7], [11], True, True)]
    result = simulate_os(config, schedule)
    # rows + cols = 3: tile 0 rows in cycles 3, 4; tile 1 (last step in cycle 2) in 5, 6.
    assert result[3:7, 0].tolist() == [3, 6, 55, 77]


def test_os_row_order():
    # Row j of the tile (a[j]) comes out j cycles after row 0: increasing order.
    config = cfg(3, 1, dataflow="os")
    schedule = [([1, 2, 3], [1], True, False), ([10, 20, 30], [1], False, True)]
    result = simulate_os(config, schedule)
    assert result[1 + 4:1 + 4 + 3, 0].tolist() == [11, 22, 33]
