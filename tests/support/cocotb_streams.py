"""cocotb driver and monitor tasks around :mod:`tests.support.streams`' beat source and sink."""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from .streams import BeatSink, BeatSource

__all__ = ["CycleCounter", "OwnedTask", "StreamDriver", "StreamMonitor"]


class CycleCounter:
    """Cycle number from the simulation time; cycle 0 starts at :meth:`start`.

    Every process reads the same number, whatever the order in which the simulator
    resumes them.
    """

    def __init__(self, period_ns):
        self._period_ns = period_ns
        self._t0 = None

    def start(self):
        """The rising edge just seen starts cycle 0."""
        self._t0 = get_sim_time("ns")

    def __call__(self):
        return int(round((get_sim_time("ns") - self._t0) / self._period_ns))


class OwnedTask:
    """A coroutine owned by a driver or monitor: :meth:`start` and :meth:`stop`.

    Subclasses write ``_run`` (the coroutine) and ``_idle`` (what to drive once stopped).
    """

    _task = None

    def start(self):
        """Start in the current cycle (call right after a rising edge)."""
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._idle()

    async def _run(self):
        raise NotImplementedError

    def _idle(self):
        pass


class StreamDriver(OwnedTask):
    """Drives an input stream ``<name>__{payload,valid,ready}`` from a queue of beats.

    Sampling convention: right after a rising edge it writes what it drives for the cycle
    that edge starts; in ``ReadOnly`` it reads ``ready``, which decides the transfer at the
    next edge. A beat is presented and held as :class:`~tests.support.streams.BeatSource`
    says (``valid_at(t)`` gates new beats). All beats are queued with :meth:`send` before
    :meth:`start`; the task ends when the queue is drained.
    """

    def __init__(self, dut, name, clock, cycles, valid_at):
        self.name = name
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._clock = clock
        self._cycles = cycles
        self._source = BeatSource(name, valid_at)
        self._valid.value = 0
        self._payload.value = 0

    @property
    def transfers(self):
        """The cycle of every beat taken."""
        return self._source.transfers

    @property
    def pending(self):
        """Beats not yet taken (queued or held)."""
        return self._source.pending

    def send(self, beats):
        self._source.send(beats)

    def _idle(self):
        self._valid.value = 0

    async def _run(self):
        while True:
            t = self._cycles()
            beat = self._source.present(t)
            if beat is not None:
                self._payload.value = beat
            self._valid.value = int(beat is not None)
            await ReadOnly()
            if beat is not None and self._ready.value == 1:
                self._source.taken(t)
            await RisingEdge(self._clock)
            if not self._source.pending:
                self._valid.value = 0
                return


class StreamMonitor(OwnedTask):
    """Receives an output stream ``<name>__{payload,valid,ready}``; ready is ``ready_at(t)``.

    Checks the stream rules (:class:`~tests.support.streams.BeatSink`; broken rules go to
    ``errors``) and hands every transfer to ``receive(payload, cycle)``.
    """

    def __init__(self, dut, name, clock, cycles, ready_at, receive):
        self._payload = getattr(dut, f"{name}__payload")
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._clock = clock
        self._cycles = cycles
        self._ready_at = ready_at
        self._sink = BeatSink(receive)
        self._ready.value = 0

    @property
    def errors(self):
        return self._sink.errors

    def _idle(self):
        self._ready.value = 0

    async def _run(self):
        while True:
            t = self._cycles()
            ready = self._ready_at(t)
            self._ready.value = int(ready)
            await ReadOnly()
            valid = self._valid.value == 1
            # int(): a 1-bit payload reads as a Logic, which has no to_unsigned().
            self._sink.observe(t, ready, valid, int(self._payload.value) if valid else None)
            await RisingEdge(self._clock)
