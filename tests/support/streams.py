"""Stream handshake of the testbenches: seeded stall patterns, one beat source, one sink."""

import collections

import numpy as np

__all__ = ["INPUT_STREAMS", "BeatSink", "BeatSource", "ExplicitPatterns", "StreamPatterns"]

#: Input streams of the engine, in the order their patterns are seeded; ``par`` exists only
#: on engines with an output stage (requantizer or threshold compares).
INPUT_STREAMS = ("cmd", "act", "wgt", "par")


class StreamPatterns:
    """Seeded per-cycle patterns: ``valid[name][t]`` for inputs, ``ready[t]`` for results.

    Each stream has its own generator (seeded from ``seed`` and the stream's position in
    ``names``), and all arrays grow together in blocks of :attr:`BLOCK` cycles, so a
    pattern's first ``n`` cycles do not depend on how long the run turns out to be. A beat
    may be presented in cycle ``t`` when ``valid[name][t]``; results are accepted in cycle
    ``t`` when ``ready[t]``. ``stall_prob = 0`` gives patterns that never stall.

    Parameters
    ----------
    seed : int
    stall_prob : float in [0, 1)
        Probability of a gap per cycle, on every stream.
    names : sequence of str
        Input streams.
    cycles : int
        Cycles to draw at once (more are drawn on demand by :meth:`valid_at`/:meth:`ready_at`).
    """

    BLOCK = 1024

    def __init__(self, seed, stall_prob, names=INPUT_STREAMS, cycles=0):
        if not 0.0 <= stall_prob < 1.0:
            raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob}")
        self.stall_prob = stall_prob
        self.names = tuple(names)
        self._rngs = {name: np.random.default_rng([int(seed), 0x70617474, i])
                      for i, name in enumerate((*self.names, "res"))}
        self._valid = {name: [] for name in self.names}
        self._ready = []
        self.length = 0
        self.ensure(cycles)

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
        """Whether input ``name`` may present a beat in cycle ``t``."""
        if t >= self.length:
            self.ensure(t + 1)
        return bool(self._valid[name][t // self.BLOCK][t % self.BLOCK])

    def ready_at(self, t):
        """Whether the result stream is ready in cycle ``t``."""
        if t >= self.length:
            self.ensure(t + 1)
        return bool(self._ready[t // self.BLOCK][t % self.BLOCK])

    def window(self, name, start, stop):
        """Input ``name``'s valid (or, for ``"res"``, the result ready) in cycles
        ``start..stop-1``, as a bool array (the patterns grow to ``stop`` if needed)."""
        self.ensure(stop)
        blocks = self._ready if name == "res" else self._valid[name]
        first, last = start // self.BLOCK, (stop - 1) // self.BLOCK + 1
        bits = np.concatenate(blocks[first:last]) if stop > start else np.zeros(0, bool)
        return bits[start - first * self.BLOCK:stop - first * self.BLOCK]

    @property
    def valid(self):
        """``{name: bool array}`` of the current length."""
        return {name: np.concatenate(blocks) if blocks else np.zeros(0, dtype=bool)
                for name, blocks in self._valid.items()}

    @property
    def ready(self):
        """``bool array`` of the result stream's ready, of the current length."""
        return np.concatenate(self._ready) if self._ready else np.zeros(0, dtype=bool)


class ExplicitPatterns:
    """Given per-cycle patterns (e.g. those an off-chip bandwidth implies, from
    :func:`sim.schedule.sequence_patterns`), with the interface of :class:`StreamPatterns`.

    ``valid``: ``{name: bool array}``, ``ready``: bool array, all of one length; past the
    end every stream is valid and the result ready (as in the cycle model). ``to_json`` and
    ``from_json`` carry them in a job file as strings of ``0`` and ``1``.
    """

    #: Not random; the testbench's hang limit treats such patterns as heavy stalls.
    stall_prob = 0.5

    def __init__(self, valid, ready):
        self._valid = {name: np.asarray(v, dtype=bool) for name, v in valid.items()}
        self._ready = np.asarray(ready, dtype=bool)
        self.names = tuple(self._valid)
        self.length = len(self._ready)
        for name, v in self._valid.items():
            if v.shape != (self.length,):
                raise ValueError(f"valid pattern {name!r} must have the ready pattern's length "
                                 f"({self.length}), not shape {v.shape}")

    def ensure(self, cycles):
        """Grow every pattern to at least ``cycles`` cycles (true past the given end)."""
        if cycles > self.length:
            extra = np.ones(cycles - self.length, dtype=bool)
            self._valid = {n: np.concatenate([v, extra]) for n, v in self._valid.items()}
            self._ready = np.concatenate([self._ready, extra])
            self.length = cycles

    def valid_at(self, name, t):
        return bool(self._valid[name][t]) if t < self.length else True

    def ready_at(self, t):
        return bool(self._ready[t]) if t < self.length else True

    def window(self, name, start, stop):
        """As :meth:`StreamPatterns.window`."""
        self.ensure(stop)
        return (self._ready if name == "res" else self._valid[name])[start:stop]

    @property
    def valid(self):
        return dict(self._valid)

    @property
    def ready(self):
        return self._ready

    def to_json(self):
        bits = lambda a: "".join("1" if x else "0" for x in a)  # noqa: E731
        return {"valid": {n: bits(v) for n, v in self._valid.items()}, "ready": bits(self._ready)}

    @classmethod
    def from_json(cls, doc):
        unbits = lambda s: np.frombuffer(s.encode(), dtype=np.uint8) == ord("1")  # noqa: E731
        return cls({n: unbits(v) for n, v in doc["valid"].items()}, unbits(doc["ready"]))


class BeatSource:
    """The driving side of one input stream, cycle by cycle, whatever the simulator.

    In cycle ``t`` a source that holds no beat, has beats queued and has ``valid_at(t)``
    presents its next beat (:meth:`present`); a presented beat is held, valid and
    unchanged, until it is taken (:meth:`taken`, when valid and ready were both high in
    cycle ``t``). ``transfers`` lists the cycle of every beat taken.
    """

    def __init__(self, name, valid_at, beats=()):
        self.name = name
        self._valid_at = valid_at
        self._queue = collections.deque(beats)
        self.holding = None
        self.transfers = []

    def send(self, beats):
        """Queue more beats."""
        self._queue.extend(beats)

    @property
    def pending(self):
        """Beats not yet taken (queued or held)."""
        return len(self._queue) + (self.holding is not None)

    def present(self, t):
        """The beat presented in cycle ``t`` (held or newly drawn), or None (valid low)."""
        if self.holding is None and self._queue and self._valid_at(t):
            self.holding = self._queue.popleft()
        return self.holding

    def taken(self, t):
        """The held beat was transferred in cycle ``t``."""
        self.transfers.append(t)
        self.holding = None


class BeatSink:
    """The receiving side of the result stream, checking the stream rules on the way.

    Given, for cycle ``t``, the ready it drove and the valid and payload it saw, it
    reports a beat seen valid and not taken that drops valid or changes payload in a
    later cycle (``errors``) and hands every transfer to ``receive(payload, t)``.
    """

    def __init__(self, receive):
        self._receive = receive
        self._stalled = None
        self.errors = []

    def observe(self, t, ready, valid, payload):
        """Cycle ``t``: ``ready`` driven, ``valid`` and ``payload`` seen (settled)."""
        payload = payload if valid else None
        if self._stalled is not None:
            if not valid:
                self.errors.append(f"cycle {t}: valid dropped before the beat was taken")
            elif payload != self._stalled:
                self.errors.append(f"cycle {t}: payload changed while stalled "
                                   f"({self._stalled:#x} -> {payload:#x})")
        if valid and ready:
            self._receive(payload, t)
            self._stalled = None
        else:
            self._stalled = payload
