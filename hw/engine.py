"""``GemmEngine``: the top level: GEMM commands and operand streams in, result stream out.

Streams and their order (one GEMM per command; see also :mod:`hw.beats`). A beat of an
operand stream holds ``rows * pack`` consecutive elements along K (``pack`` is 1 in the
``mac`` mode; in the ``xnor`` mode an element is one bit, 1 for +1, and K counts bits):

* ``cmd``: one beat per GEMM (``M``, ``K``, ``N``; the activation zero point in the
  ``mac`` mode, the bit planes in the ``bitserial`` mode; the output stage's fields).
  It is accepted only while the engine is idle; the operand streams are accepted only
  after it (so a GEMM's first input beat is always its command).
* ``act``: A (M x K) row by row; each row as ``ceil(K / (rows * pack))`` beats
  (elements past K in the last beat are ignored).
* ``wgt``: W as N output channels (W transposed, the layout of an OHWI filter), each as
  ``ceil(K / (rows * pack))`` beats of consecutive weights along K.
* ``par`` (engines with an output stage only): N beats, one per output channel: bias, M0,
  shift (requantizer) or threshold, invert (threshold compares).
* ``res``: results in tile order: for each block of rows (``block_rows`` rows in the
  weight-stationary dataflow, ``rows`` in the output-stationary one), for each group of
  ``cols`` channels, one beat per row of the block holding that row's ``cols`` results
  (columns past N are 0).

Inside, activations and weights are buffered (the whole of W, two blocks of A), a
sequencer walks the tiles (bit-serial: every tile once per pair of bit planes), the
array computes, and results pass through the output stage (requantizer, threshold
compares or none) into an output FIFO. A row or tile enters the array only when the
FIFO has room reserved for its results (credits), so the array itself never stalls and
every stream tolerates any stall on either side.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .buffers import ActivationBuffer, ChannelBuffer
from .command import CommandDecoder
from .config import ArrayConfig
from .interfaces import (
    act_layout,
    cmd_layout,
    par_layout,
    res_layout,
    wgt_layout,
)
from .output import OutputStage, ResultQueue
from .sequencer import sequencer

__all__ = ["GemmEngine", "engine_signature"]


def _connect_each(m, ports, peers):
    """Connect two arrays of interfaces (read ports) element by element."""
    for port, peer in zip(ports, peers, strict=True):
        connect(m, port, peer)


def engine_signature(config: ArrayConfig):
    """The engine's ports: the streams of :mod:`hw.interfaces` plus ``busy`` and ``error``."""
    ports = {
        "cmd": In(stream.Signature(cmd_layout(config))),
        "act": In(stream.Signature(act_layout(config))),
        "wgt": In(stream.Signature(wgt_layout(config))),
    }
    if config.has_params:
        ports["par"] = In(stream.Signature(par_layout(config)))
    ports["res"] = Out(stream.Signature(res_layout(config)))
    ports["busy"] = Out(1)
    ports["error"] = Out(1)
    return wiring.Signature(ports)


class GemmEngine(wiring.Component):
    """Quantized GEMM engine on a systolic array (weight- or output-stationary).

    Parameters
    ----------
    config : ArrayConfig

    Members
    -------
    cmd : In(stream.Signature(cmd_layout))
    act : In(stream.Signature(act_layout))
    wgt : In(stream.Signature(wgt_layout))
    par : In(stream.Signature(par_layout))
        Only when ``config.has_params`` (requantizer or threshold compares).
    res : Out(stream.Signature(res_layout))
    busy : Out(1)
        High from the cycle after a command is accepted until its results are all out.
    error : Out(1)
        High after a command with a zero or over-limit size (or bit planes out of range,
        or ``act_min > act_max``) was refused; low again after the next good command.
    """

    def __init__(self, config: ArrayConfig):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"GemmEngine config must be an ArrayConfig, not {config!r}")
        config.check_generatable()
        self._config = config
        super().__init__(engine_signature(config))

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.command = command = CommandDecoder(cfg)
        m.submodules.act_buffer = acts = ActivationBuffer(cfg)
        m.submodules.wgt_buffer = weights = ChannelBuffer(
            cfg, wgt_layout(cfg), per_channel_words=True, name="wl")
        m.submodules.sequencer = seq = sequencer(cfg)
        m.submodules.output_stage = output = OutputStage(cfg)
        m.submodules.result_queue = queue = ResultQueue(cfg)
        units = [acts, weights, seq, output]
        if cfg.has_params:
            m.submodules.par_buffer = params = ChannelBuffer(
                cfg, par_layout(cfg), per_channel_words=False, name="pl")
            units.append(params)

        # streams in
        connect(m, flipped(self.cmd), command.cmd)
        connect(m, flipped(self.act), acts.act)
        connect(m, flipped(self.wgt), weights.data)
        # the GEMM in progress, to every unit
        connect(m, command.ctx, *(unit.ctx for unit in units))
        # operands: buffers to the sequencer and its array
        _connect_each(m, acts.read, seq.act_read)
        _connect_each(m, weights.read, seq.wgt_read)
        connect(m, weights.status, seq.wgt_status)
        m.d.comb += [acts.used_blocks.eq(seq.block), seq.act_blocks.eq(acts.blocks)]
        if cfg.has_params:
            connect(m, flipped(self.par), params.data)
            connect(m, params.status, seq.par_status)
            _connect_each(m, params.read, output.par_read)
        # results: array, output stage, result queue, stream out
        connect(m, seq.sums, output.sums)
        connect(m, output.result, queue.write)
        connect(m, queue.credits, seq.credits)
        connect(m, queue.res, flipped(self.res))
        # the GEMM is over once every tile was issued and every reserved result left
        m.d.comb += [command.done.eq(seq.issued_all & queue.idle),
                     self.busy.eq(command.ctx.busy), self.error.eq(command.error)]
        return m
