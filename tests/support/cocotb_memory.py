"""cocotb side of the memory-backed harness (:mod:`hw.flow.harness`): load, refill, read back.

Python wakes up only when the wrapper raises ``attn`` (a ring to refill or to read, all
results in, or a hang), not once per cycle. It acts in the middle of the cycle (at the
falling clock edge), when everything the wrapper computes from its registers is settled
and before the next rising edge samples what it writes.
"""

import time

import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hw.flow.harness import PACK, PATTERN_BITS

__all__ = ["BusyHistory", "MemoryHarness"]


class BusyHistory:
    """``busy`` of every cycle, from the cycles in which it changed (it is 0 in cycle 0).

    ``error_first`` is the first cycle with ``error`` high, or None.
    """

    def __init__(self, changes, busy_end, error_first):
        self._changes = np.asarray(changes, dtype=np.int64)
        self.busy_end = bool(busy_end)
        self.error_first = error_first

    def busy_at(self, t):
        return bool(np.searchsorted(self._changes, t, side="right") % 2)

    def first_low(self, start, stop):
        """The first cycle in ``start..stop`` (inclusive) with ``busy`` low, or None."""
        if start > stop:
            return None
        if not self.busy_at(start):
            return start
        # busy is high at start: it falls at the next change, if that comes by ``stop``.
        index = int(np.searchsorted(self._changes, start, side="right"))
        if index < len(self._changes) and self._changes[index] <= stop:
            return int(self._changes[index])
        return None


class MemoryHarness:
    """Runs one job through the wrapper: all streams' beats, the patterns, the results.

    Parameters
    ----------
    dut : the wrapper (top level :data:`hw.flow.harness.TOPLEVEL`)
    beats : dict of str to list of int
        Every beat of each input stream, in order.
    first_beats : dict of str to list of int or None
        Per stream, the index of each GEMM's first beat (None: the GEMM has none); their
        transfer cycles are read back for the operand-order check.
    patterns : tests.support.streams.StreamPatterns
    expected : int
        Result beats expected.
    receive : callable(beat, cycle_of)
        Called with every result beat in order; ``cycle_of()`` reads its transfer cycle.
    idle_limit : int
        Cycles without any transfer after which the run counts as hung.
    beat_depth, pattern_words : int
        The wrapper's ring sizes (as generated).
    widths : dict of str to int
        Payload width of every stream (inputs and ``res``).
    """

    def __init__(self, dut, beats, first_beats, patterns, expected, receive, idle_limit,
                 beat_depth, pattern_words, widths):
        self._dut = dut
        self._widths = widths
        self._beats = beats
        self._first = first_beats
        self._patterns = patterns
        self._expected = expected
        self._receive = receive
        self._idle_limit = idle_limit
        self._depth = beat_depth
        self._words = pattern_words
        self._loaded = dict.fromkeys(beats, 0)
        self._checked = dict.fromkeys(beats, 0)   # GEMMs whose first-beat cycle is read
        self.first_cycles = {name: [None] * len(firsts) for name, firsts in first_beats.items()}
        self._pattern_loaded = 0
        self._results_read = 0
        self._changes = []
        self.taken = dict.fromkeys(beats, 0)
        self.wakeups = 0
        self.service_seconds = 0.0

    # --- loading ----------------------------------------------------------------------------

    def _load_beats(self, in_reset=False):
        dut, depth = self._dut, self._depth
        for name, beats in self._beats.items():
            # In reset nothing is taken (and Icarus's counters may not be reset yet).
            taken = 0 if in_reset else int(getattr(dut, f"{name}_taken").value)
            self.taken[name] = taken
            self._read_first_cycles(name, taken)
            # Whole words: the word of beat j overwrites that of beat j - depth, which must
            # be taken, with every other beat of its word.
            target = min(len(beats), taken - taken % PACK + depth)
            start = self._loaded[name]
            if target > start:
                memory, width = getattr(dut, f"{name}_mem"), self._widths[name]
                slots = depth // PACK
                for word in range(start // PACK, (target - 1) // PACK + 1):
                    chunk = beats[word * PACK:min(target, word * PACK + PACK)]
                    value = 0
                    for lane, beat in enumerate(chunk):
                        value |= beat << (lane * width)
                    memory[word % slots].value = value
                self._loaded[name] = target
                getattr(dut, f"{name}_avail").value = target
            getattr(dut, f"{name}_more").value = int(target < len(beats))

    def _read_first_cycles(self, name, taken):
        firsts, cycles = self._first[name], self.first_cycles[name]
        memory = getattr(self._dut, f"{name}_cyc")
        index = self._checked[name]
        while index < len(firsts) and (firsts[index] is None or firsts[index] < taken):
            if firsts[index] is not None:
                cycles[index] = int(memory[firsts[index] % self._depth].value)
            index += 1
        self._checked[name] = index

    def _load_patterns(self, cycle):
        """Pattern words up to ``pattern_words`` ahead of the word of ``cycle``."""
        target = cycle // PATTERN_BITS + self._words
        start = self._pattern_loaded
        if target <= start:
            return
        patterns = self._patterns
        patterns.ensure(target * PATTERN_BITS)
        for name in (*patterns.names, "res"):
            bits = patterns.window(name, start * PATTERN_BITS, target * PATTERN_BITS)
            words = np.packbits(bits, bitorder="little").reshape(-1, PATTERN_BITS // 8)
            memory = getattr(self._dut, f"{name}_pat")
            for k, word in enumerate(words, start):
                memory[k % self._words].value = int.from_bytes(word.tobytes(), "little")
        self._pattern_loaded = target
        self._dut.pat_avail.value = target

    def _read_results(self):
        dut, depth = self._dut, self._depth
        count = int(dut.res_count.value)
        if count > self._results_read:
            payloads, cycles = dut.res_mem, dut.res_cyc
            width, slots = self._widths["res"], depth // PACK
            mask = (1 << width) - 1
            word, value = None, 0
            for j in range(self._results_read, count):
                if j // PACK != word:
                    word = j // PACK
                    value = int(payloads[word % slots].value)
                self._receive((value >> (j % PACK * width)) & mask,
                              lambda j=j: int(cycles[j % depth].value))
            self._results_read = count
            dut.res_read.value = count
        changes = int(dut.chg_count.value)
        if changes > len(self._changes):
            memory = dut.busy_chg
            self._changes += [int(memory[j % depth].value)
                              for j in range(len(self._changes), changes)]
            dut.chg_read.value = changes

    def _service(self):
        self.wakeups += 1
        start = time.perf_counter()
        self._read_results()
        self._load_beats()
        self._load_patterns(int(self._dut.cycle.value))
        self.service_seconds += time.perf_counter() - start

    # --- the run ----------------------------------------------------------------------------

    async def run(self, clock, reset_cycles, tail_cycles):
        """Reset, run until all results are in (or a hang), then ``tail_cycles`` more.

        Returns ``(hung, end_cycle)``: whether the wrapper reported a hang, and the cycle
        reached.
        """
        dut = self._dut
        dut.rst.value = 1
        for name in self._beats:
            getattr(dut, f"{name}_avail").value = 0
        dut.res_read.value = 0
        dut.chg_read.value = 0
        dut.pat_avail.value = 0
        dut.res_expect.value = self._expected
        dut.idle_limit.value = self._idle_limit
        await RisingEdge(clock)
        await FallingEdge(clock)
        # Words start at 0, not X (Icarus): a partly written word reads as numbers, and a
        # source's payload is defined even when it presents nothing.
        for name in (*self._beats, "res"):
            memory = getattr(dut, f"{name}_mem")
            for slot in range(self._depth // PACK):
                memory[slot].value = 0
        self._load_beats(in_reset=True)
        self._load_patterns(0)
        for _ in range(reset_cycles):
            await RisingEdge(clock)
        dut.rst.value = 0                  # the next rising edge starts cycle 0
        attn = dut.attn
        while True:
            await RisingEdge(attn)
            await FallingEdge(clock)
            while True:
                self._service()
                if dut.done.value == 1 or dut.hung.value == 1:
                    break
                await FallingEdge(clock)   # the writes are in; is there more to do?
                if attn.value != 1:
                    break
            if dut.done.value == 1 or dut.hung.value == 1:
                break
        hung = dut.done.value != 1
        await ClockCycles(clock, tail_cycles)
        await FallingEdge(clock)
        self._read_results()
        for name in self._beats:
            taken = int(getattr(dut, f"{name}_taken").value)
            self.taken[name] = taken
            self._read_first_cycles(name, taken)
        self.busy_end = dut.busy.value == 1
        return hung, int(dut.cycle.value)

    def pending(self):
        """Beats of each input stream never taken."""
        return {name: len(beats) - self.taken[name] for name, beats in self._beats.items()}

    def status(self):
        """:class:`BusyHistory` of the run (after :meth:`run`)."""
        error_first = (int(self._dut.error_first.value) if self._dut.error_seen.value == 1
                       else None)
        return BusyHistory(self._changes, self.busy_end, error_first)

    def rule_errors(self):
        """The result stream's broken rules, as the per-cycle monitor words them."""
        dut = self._dut
        count = int(dut.rule_errors.value)
        if not count:
            return []
        first = int(dut.rule_first.value)
        what = ("valid dropped before the beat was taken" if int(dut.rule_kind.value) == 1
                else "payload changed while stalled")
        more = f" ({count} cycles broke a rule in all)" if count > 1 else ""
        return [f"cycle {first}: {what}{more}"]
