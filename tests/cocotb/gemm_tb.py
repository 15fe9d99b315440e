"""cocotb 2.x testbench of the generated GEMM engine: golden-checked results, cycle counts.

The job comes from the JSON file named by ``QMAC_GEMM_JOB`` (``python -m hw.regress`` and
``tests/test_rtl_regress.py`` write it)::

    {
      "config": {...},              # ArrayConfig.to_dict() of the design under test
      "seed": 1234,                 # operands, shapes and stall patterns
      "stall_prob": 0.3,            # probability of a valid gap / ready gap per cycle
      "generate": {"count": 20, "limits": [M, K, N], "edges": true},   # optional
      "gemms": [{"shape": [M, K, N]} or {"a": [[...]], "w": [[...]], ...}],  # optional
      "oracle": {"path": ".../tflite_conv_int8.npz", "cases": ["case000", ...]},  # optional
      "output": "/path/records.json",
      "negative_control": false     # true: corrupt one expected beat (must fail)
    }

All GEMMs run back to back (see :mod:`gemm_jobs` for what the generator makes; it
stays within the configuration's ``max_m``/``max_k``/``max_n``, while an explicit GEMM
over them is refused by the engine and the test reports the hang that follows). The
output file holds ``{"records": [...], "errors": [...], ...}`` with one record per
GEMM: ``M``, ``K``, ``N``, ``label``, ``match``, ``first``, ``last``, ``rtl_cycles``,
``model_cycles``; it is written before the test asserts, so a failing run has it too.

The test fails on: a result beat that differs from the golden model (TFLite's ``y``
for oracle cases), a missing or extra result beat, an input beat never taken, the
result stream breaking the stream rules (valid dropped or payload changed while
stalled), no transfer at all for a long time (a hang), ``error`` ever high, ``busy``
low between a GEMM's command and its last result or still high after it, an operand
beat taken before its GEMM's command, an edge case that does not deliver what it
promises (:func:`gemm_jobs.coverage_errors`: e.g. the wrap case must wrap), and any
disagreement with the cycle model.

Operand elements past K in a row's last beat are random (seeded), never zero, so every run
also checks that the engine ignores them.

Per-cycle protocol (the one the cycle model is written against; ``tests/engine_sim.py``
is the same protocol in Amaranth's simulator). Cycle 0 is the first clock cycle after
reset is released. In cycle ``t`` an input stream's driver that holds no beat, has beats
left and has ``valid[stream][t]`` true presents its next beat; a presented beat is held
until taken; a beat is taken in cycle ``t`` when valid and ready are both 1 in cycle
``t``. The result stream's ready in cycle ``t`` is ``ready[t]``. For GEMM ``i``, ``first``
is the cycle of its command transfer, ``last`` the cycle of its last result transfer and
``rtl_cycles = last - first + 1``. The patterns are numpy bool arrays, ``rng.random(n) >=
stall_prob``, one generator per stream, extended in fixed blocks as the run goes on.

Sampling convention (as in ``tests/smoke/smoke_tb.py``): right after a rising edge a
process writes what it drives for the cycle that edge starts; in ``ReadOnly`` it reads
the settled values, which decide the transfers at the next edge. Cycle numbers come from
the simulation time, so every process agrees on them.

When ``sim.engine_model`` can be imported, its ``run_patterns`` is given the very
patterns applied here and every GEMM's ``rtl_cycles`` must equal its prediction; when
the module does not exist, ``model_cycles`` is None.
"""

import collections
import json
import os
import time

import cocotb
import gemm_jobs
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from hw.beats import StreamCodec
from hw.config import ArrayConfig

__all__ = ["JOB_ENV", "Scoreboard", "StreamDriver", "StreamMonitor", "StreamPatterns",
           "gemm_regression"]

JOB_ENV = "QMAC_GEMM_JOB"
CLOCK_PERIOD_NS = 10
RESET_CYCLES = 3
#: Cycles watched after the last result: nothing may follow it, and ``busy`` must fall.
TAIL_CYCLES = 16
#: Streams of the engine, inputs first; ``par`` exists only on engines with an output
#: stage (requantizer or threshold compares).
INPUT_STREAMS = ("cmd", "act", "wgt", "par")


class StreamPatterns:
    """Seeded per-cycle patterns: ``valid[name][t]`` for inputs, ``ready[t]`` for results.

    Each stream has its own generator (seeded from ``seed`` and the stream's position in
    ``names``), and all arrays grow together in blocks of :attr:`BLOCK` cycles, so a
    pattern's first ``n`` cycles do not depend on how long the run turns out to be.
    """

    BLOCK = 1024

    def __init__(self, seed, stall_prob, names):
        if not 0.0 <= stall_prob < 1.0:
            raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob}")
        self.stall_prob = stall_prob
        self.names = tuple(names)
        self._rngs = {name: np.random.default_rng([int(seed), 0x70617474, i])
                      for i, name in enumerate((*self.names, "res"))}
        self._valid = {name: [] for name in self.names}
        self._ready = []
        self.length = 0

    def _block(self, name):
        return self._rngs[name].random(self.BLOCK) >= self.stall_prob

    def ensure(self, cycles):
        """Grow every pattern to at least ``cycles`` cycles."""
        while self.length < cycles:
            for name in self.names:
                self._valid[name].append(self._block(name))
            self._ready.append(self._block("res"))
            self.length += self.BLOCK

    def valid_at(self, name, t):
        if t >= self.length:
            self.ensure(t + 1)
        return bool(self._valid[name][t // self.BLOCK][t % self.BLOCK])

    def ready_at(self, t):
        if t >= self.length:
            self.ensure(t + 1)
        return bool(self._ready[t // self.BLOCK][t % self.BLOCK])

    @property
    def valid(self):
        """``{name: bool array}`` of the current length."""
        return {name: np.concatenate(blocks) if blocks else np.zeros(0, dtype=bool)
                for name, blocks in self._valid.items()}

    @property
    def ready(self):
        return np.concatenate(self._ready) if self._ready else np.zeros(0, dtype=bool)


class _Cycles:
    """Cycle number from the simulation time; cycle 0 starts at :meth:`start`."""

    def __init__(self):
        self._t0 = None

    def start(self):
        self._t0 = get_sim_time("ns")

    def __call__(self):
        return int(round((get_sim_time("ns") - self._t0) / CLOCK_PERIOD_NS))


class StreamDriver:
    """Drives an engine input stream ``<name>__{payload,valid,ready}`` from a beat queue.

    In cycle ``t`` it presents the next beat if it holds none and ``valid_at(t)`` allows;
    the beat is held (valid high, payload unchanged) until taken. ``transfers`` lists the
    cycle of every beat taken. All beats are queued with :meth:`send` before
    :meth:`start`; the task ends when the queue is drained.
    """

    def __init__(self, dut, name, clock, cycles, valid_at):
        self.name = name
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._clock = clock
        self._cycles = cycles
        self._valid_at = valid_at
        self._queue = collections.deque()
        self._holding = None
        self._task = None
        self.transfers = []
        self._valid.value = 0
        self._payload.value = 0

    @property
    def pending(self):
        """Beats not yet taken (queued or held)."""
        return len(self._queue) + (self._holding is not None)

    def send(self, beats):
        self._queue.extend(beats)

    def start(self):
        """Start driving in the current cycle (call right after a rising edge)."""
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._valid.value = 0

    async def _run(self):
        while True:
            t = self._cycles()
            if self._holding is None:
                if self._queue and self._valid_at(t):
                    self._holding = self._queue.popleft()
                    self._payload.value = self._holding
                    self._valid.value = 1
                else:
                    self._valid.value = 0
            await ReadOnly()
            if self._holding is not None and self._ready.value == 1:
                self.transfers.append(t)
                self._holding = None
            await RisingEdge(self._clock)
            if self._holding is None and not self._queue:
                self._valid.value = 0
                return


class StreamMonitor:
    """Receives the engine's result stream; ``ready`` in cycle ``t`` is ``ready_at(t)``.

    Checks the stream rules (a beat seen valid stays valid with the same payload until
    taken) and hands every transfer to ``receive(payload, cycle)``.
    """

    def __init__(self, dut, name, clock, cycles, ready_at, receive):
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._clock = clock
        self._cycles = cycles
        self._ready_at = ready_at
        self._receive = receive
        self._task = None
        self.errors = []
        self._ready.value = 0

    def start(self):
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._ready.value = 0

    async def _run(self):
        stalled = None  # payload seen valid and not taken
        while True:
            t = self._cycles()
            ready = self._ready_at(t)
            self._ready.value = int(ready)
            await ReadOnly()
            valid = self._valid.value == 1
            # int(): a 1-bit payload reads as a Logic, which has no to_unsigned().
            payload = int(self._payload.value) if valid else None
            if stalled is not None:
                if not valid:
                    self.errors.append(f"cycle {t}: res valid dropped before the beat was taken")
                elif payload != stalled:
                    self.errors.append(f"cycle {t}: res payload changed while stalled")
            if valid and ready:
                self._receive(payload, t)
                stalled = None
            else:
                stalled = payload
            await RisingEdge(self._clock)


class StatusMonitor:
    """Samples ``busy`` and ``error`` in every cycle (for the sanity checks after the run)."""

    def __init__(self, dut, clock, cycles):
        self._busy, self._error = dut.busy, dut.error
        self._clock = clock
        self._cycles = cycles
        self._task = None
        self.busy = bytearray()
        self.error = bytearray()

    def start(self):
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self):
        while True:
            await ReadOnly()
            t = self._cycles()
            if len(self.busy) != t:
                raise RuntimeError(f"status sampled for cycle {len(self.busy)} at cycle {t}")
            self.busy.append(self._busy.value == 1)
            self.error.append(self._error.value == 1)
            await RisingEdge(self._clock)


class Scoreboard:
    """In-order scoreboard: expected result beats from the golden model, per GEMM."""

    def __init__(self, codec, cases):
        self._codec = codec
        self._expected = collections.deque()
        self.beats = []          # number of result beats of each case
        self.got = [0] * len(cases)
        self.last_cycle = [None] * len(cases)
        self.mismatches = [0] * len(cases)
        self.errors = []
        self.received = 0
        self.done = Event()
        for index, case in enumerate(cases):
            m, _, n = case.shape
            order = codec.result_order(m, n)
            beats = codec.expected_beats(case.expected)
            self.beats.append(len(beats))
            for position, beat in zip(order, beats, strict=True):
                self._expected.append((index, position, beat))
        self._cases = cases
        if not self._expected:
            self.done.set()

    @property
    def outstanding(self):
        return len(self._expected)

    def corrupt_one(self):
        """Negative control: flip the lowest bit of the first expected beat."""
        index, position, beat = self._expected[0]
        self._expected[0] = (index, position, beat ^ 1)

    def receive(self, beat, cycle):
        self.received += 1
        if not self._expected:
            self.errors.append(f"cycle {cycle}: result beat {beat:#x} after the last expected one")
            return
        index, (row, n0), want = self._expected.popleft()
        self.last_cycle[index] = cycle
        self.got[index] += 1
        if beat != want:
            self.mismatches[index] += 1
            if len(self.errors) < 20:
                self.errors.append(
                    f"cycle {cycle}: GEMM {index} ({self._cases[index].label}, "
                    f"{'x'.join(map(str, self._cases[index].shape))}) row {row} columns "
                    f"{n0}..: got {self._codec.unpack_result(beat)}, expected "
                    f"{self._codec.unpack_result(want)}")
        if not self._expected:
            self.done.set()


def _cycle_model():
    """``sim.engine_model`` if it exists, else None (a model that fails to import raises)."""
    try:
        from sim import engine_model
    except ModuleNotFoundError as error:
        if error.name in ("sim.engine_model", "sim"):
            return None
        raise
    return engine_model


def _load_job():
    path = os.environ.get(JOB_ENV)
    if not path:
        raise RuntimeError(f"{JOB_ENV} must name the job's JSON file")
    with open(path) as f:
        return json.load(f)


def _idle_limit(config, stall_prob):
    """Cycles without any transfer after which the run counts as hung."""
    return int((2000 + 8 * (config.max_k + config.rows + config.cols + config.fifo_depth))
               / (1.0 - stall_prob) ** 2)


def _sanity_errors(status, drivers, records):
    """Checks of ``busy``/``error`` and of the operand order around the commands."""
    errors = []
    if any(status.error):
        errors.append(f"error was high in cycle {status.error.index(1)}")
    for i, r in enumerate(records):
        if r["first"] is None:
            errors.append(f"GEMM {i}: command never taken")
            continue
        if status.busy[r["first"]]:
            errors.append(f"GEMM {i}: command taken in cycle {r['first']} while busy")
        if r["last"] is not None:
            low = [t for t in range(r["first"] + 1, r["last"] + 1) if not status.busy[t]]
            if low:
                errors.append(f"GEMM {i}: busy low in cycle {low[0]}, between its command "
                              f"({r['first']}) and its last result ({r['last']})")
    if status.busy and status.busy[-1]:
        errors.append(f"busy still high {TAIL_CYCLES} cycles after the last result")
    for driver in drivers.values():
        if driver.pending:
            errors.append(f"{driver.name}: {driver.pending} beats never taken")
    return errors


def _operand_order_errors(drivers, beat_owner, records):
    """Operand beats of a GEMM may only be taken after its command."""
    errors = []
    for name, owners in beat_owner.items():
        if name == "cmd":
            continue
        for cycle, owner in zip(drivers[name].transfers, owners, strict=False):
            if cycle <= records[owner]["first"]:
                errors.append(f"{name} beat of GEMM {owner} taken in cycle {cycle}, not after "
                              f"its command (cycle {records[owner]['first']})")
                break
    return errors


def _records(codec, cases, command_cycles, scoreboard):
    """One record per GEMM: shape, label, match, transfer cycles, RTL cycle count."""
    records = []
    for index, case in enumerate(cases):
        m, k, n = case.shape
        first = command_cycles[index] if index < len(command_cycles) else None
        complete = first is not None and scoreboard.got[index] == scoreboard.beats[index]
        last = scoreboard.last_cycle[index] if complete else None
        records.append({
            "index": index, "label": case.label, "M": m, "K": k, "N": n,
            "match": complete and scoreboard.mismatches[index] == 0,
            "mismatches": scoreboard.mismatches[index], "wrapped": case.wrapped,
            "first": first, "last": last,
            "rtl_cycles": last - first + 1 if complete else None, "model_cycles": None,
        })
        if codec.config.pe_mode == "bitserial":
            records[-1]["a_planes"], records[-1]["w_planes"] = codec.planes(case.gemm)
    return records


def _compare_with_model(model, codec, cases, records, patterns):
    """Fill in the model's counts; return the disagreements (or the model's failure).

    ``run_patterns`` gets the patterns applied; in a stall-free run every GEMM must also
    take ``gemm_cycles`` (the engine is idle between GEMMs, so each starts afresh).
    """
    errors = []
    config = codec.config
    try:
        shapes = [codec.model_shape(case.gemm) for case in cases]
        predicted = model.run_patterns(config, shapes, patterns.valid, patterns.ready)
        for r, p in zip(records, predicted, strict=True):
            r["model_cycles"] = int(p["cycles"])
            r["model_first"], r["model_last"] = int(p["first"]), int(p["last"])
            if r["rtl_cycles"] != r["model_cycles"]:
                errors.append(f"GEMM {r['index']} ({r['label']}, {r['M']}x{r['K']}x{r['N']}): "
                              f"RTL {r['rtl_cycles']} cycles ({r['first']}..{r['last']}), "
                              f"model {r['model_cycles']} ({p['first']}..{p['last']})")
        if patterns.stall_prob == 0.0:
            for r, shape in zip(records, shapes, strict=True):
                r["model_stall_free"] = int(model.gemm_cycles(config, *shape))
                if r["rtl_cycles"] != r["model_stall_free"]:
                    errors.append(f"GEMM {r['index']}: stall-free RTL {r['rtl_cycles']} "
                                  f"cycles, model gemm_cycles {r['model_stall_free']}")
    except Exception as error:  # noqa: BLE001 - reported with the other errors
        errors.append(f"cycle model failed: {type(error).__name__}: {error}")
    return errors


@cocotb.test()
async def gemm_regression(dut):
    """Every GEMM of the job, back to back, with the job's stalls; results bit-exact."""
    wall = time.perf_counter()
    job = _load_job()
    config = ArrayConfig.from_dict(job["config"])
    seed = int(job["seed"])
    stall_prob = float(job.get("stall_prob", 0.0))
    log = dut._log
    log.info("seed %d (cocotb seed %s); stall_prob %s; %s %s", seed, cocotb.RANDOM_SEED,
             stall_prob, cocotb.SIM_NAME, cocotb.SIM_VERSION)
    log.info("config %s", config)

    cases = gemm_jobs.job_cases(config, job)
    # Operand elements past K are random: the engine must ignore them.
    codec = StreamCodec(config, padding_rng=np.random.default_rng([seed, 0x706164]))
    names = tuple(n for n in INPUT_STREAMS if n != "par" or config.has_params)
    patterns = StreamPatterns(seed, stall_prob, names)
    cycles = _Cycles()
    scoreboard = Scoreboard(codec, cases)
    if job.get("negative_control"):
        scoreboard.corrupt_one()

    clock = dut.clk
    Clock(clock, CLOCK_PERIOD_NS, unit="ns").start()
    drivers = {name: StreamDriver(dut, name, clock, cycles,
                                  lambda t, name=name: patterns.valid_at(name, t))
               for name in names}
    monitor = StreamMonitor(dut, "res", clock, cycles, patterns.ready_at, scoreboard.receive)
    status = StatusMonitor(dut, clock, cycles)
    beat_owner = {name: [] for name in names}
    for index, case in enumerate(cases):
        beats = {"cmd": [codec.command(case.gemm)], "act": codec.activations(case.gemm),
                 "wgt": codec.weights(case.gemm)}
        if config.has_params:
            beats["par"] = codec.params(case.gemm)
        for name in names:
            drivers[name].send(beats[name])
            beat_owner[name] += [index] * len(beats[name])
    log.info("%d GEMMs, %s beats in, %d beats out", len(cases),
             {n: d.pending for n, d in drivers.items()}, scoreboard.outstanding)

    setup_seconds = time.perf_counter() - wall
    wall = time.perf_counter()
    dut.rst.value = 1
    for _ in range(RESET_CYCLES):
        await RisingEdge(clock)
    dut.rst.value = 0
    cycles.start()                       # this edge starts cycle 0
    for process in (*drivers.values(), monitor, status):
        process.start()

    idle_limit = _idle_limit(config, stall_prob)
    hung = None
    while not scoreboard.done.is_set():
        progress = scoreboard.received + sum(len(d.transfers) for d in drivers.values())
        await First(scoreboard.done.wait(), ClockCycles(clock, idle_limit))
        now = scoreboard.received + sum(len(d.transfers) for d in drivers.values())
        if not scoreboard.done.is_set() and now == progress:
            hung = (f"no transfer for {idle_limit} cycles (cycle {cycles()}): "
                    f"{scoreboard.outstanding} result beats outstanding, inputs pending "
                    f"{ {n: d.pending for n, d in drivers.items()} }")
            break
    await ClockCycles(clock, TAIL_CYCLES)
    end_cycle = cycles()                 # right after an edge: writes are still allowed
    for process in (*drivers.values(), monitor, status):
        process.stop()
    run_seconds = time.perf_counter() - wall
    wall = time.perf_counter()

    records = _records(codec, cases, drivers["cmd"].transfers, scoreboard)
    model, model_errors = _cycle_model(), []
    if model is not None and hung is None:
        # Exactly the patterns applied, plus a margin the model may look into.
        patterns.ensure(end_cycle + 1 + StreamPatterns.BLOCK)
        model_errors = _compare_with_model(model, codec, cases, records, patterns)

    model_seconds = time.perf_counter() - wall
    log.info("%d cycles simulated in %.2f s (%.0f cycles/s); setup %.2f s, cycle model %.2f s",
             end_cycle, run_seconds, end_cycle / max(run_seconds, 1e-9), setup_seconds,
             model_seconds)
    if hung:  # only what explains the hang
        sanity = [f"error was high in cycle {status.error.index(1)}"] if any(status.error) else []
    else:
        sanity = _sanity_errors(status, drivers, records)
    sanity += _operand_order_errors(drivers, beat_owner, records)
    limits = (job.get("generate") or {}).get("limits")
    sanity += gemm_jobs.coverage_errors(config, cases, tuple(limits) if limits else None)
    output = job.get("output")
    if output:
        with open(output, "w") as f:
            json.dump({"seed": seed, "sim": cocotb.SIM_NAME, "stall_prob": stall_prob,
                       "config": config.to_dict(), "cycle_model": model is not None,
                       "cycles_run": end_cycle, "records": records,
                       "errors": ([hung] if hung else []) + monitor.errors + scoreboard.errors
                       + sanity + model_errors}, f, indent=1)
            f.write("\n")
    for r in records:
        log.info("GEMM %3d %-40s M %4d K %4d N %4d match %-5s rtl_cycles %s model_cycles %s",
                 r["index"], r["label"], r["M"], r["K"], r["N"], r["match"], r["rtl_cycles"],
                 r["model_cycles"])

    where = f"(seed {seed}, stall_prob {stall_prob})"
    assert hung is None, f"engine hung {where}: {hung}" + "".join(f"; {e}" for e in sanity)
    assert not monitor.errors, f"stream rule broken {where}: " + "; ".join(monitor.errors[:5])
    assert not scoreboard.errors and sum(scoreboard.mismatches) == 0, (
        f"{sum(scoreboard.mismatches)} result beats wrong {where}:\n"
        + "\n".join(scoreboard.errors[:10]))
    assert scoreboard.outstanding == 0, f"{scoreboard.outstanding} result beats missing {where}"
    assert not sanity, f"sanity checks failed {where}:\n" + "\n".join(sanity[:10])
    assert not model_errors, f"RTL and cycle model disagree {where}:\n" + "\n".join(
        model_errors[:10])
