"""Lowering of a graph's convolutions and fully connected layers onto engine GEMM commands.

One pass over a :class:`~nets.graph.Graph` finds the ops the engine runs (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED) and plans each as GEMM commands that fit an
:class:`~hw.config.ArrayConfig`; every other op stays on the host, in golden.

How each op becomes GEMMs
-------------------------
* CONV_2D: im2col of the input, padded taps holding the input zero point (so they add
  nothing), ``A (M x K) = patches`` with ``M = batch * out_h * out_w`` and
  ``K = kh * kw * in_channels`` in the filter's ``(H, W, I)`` order, ``W (K x N)`` the
  OHWI filter transposed, ``N = out_channels``.
* FULLY_CONNECTED: ``A`` the input flattened to ``(rows, in)``, ``W`` the ``(out, in)``
  weights transposed.
* DEPTHWISE_CONV_2D: output channel ``c * multiplier + j`` sees input channel ``c`` only.
  Groups of ``g`` input channels become one GEMM whose ``A`` holds the im2col patches of
  those channels (``K = kh * kw * g``) and whose ``W`` is block diagonal (``N = g *
  multiplier``, zeros where a column's input channel is not the row's). ``g`` is chosen
  so that one group fills the array's columns (``g = cols // multiplier``, at least 1,
  within ``max_k`` and ``max_n``): a GEMM per channel would use one column of the array
  and round ``kh * kw`` up to whole K chunks, while the group pays for its zeros instead.
  Either way a depthwise layer uses at most ``1 / g`` of the PEs usefully; the reports
  count useful MACs only, so their utilization is the real one.

Every GEMM gets the per-channel requantization of its output channels on the ``par``
stream: ``bias``, and ``(m0, shift) = QuantizeMultiplier(s_x * s_w[c] / s_y)``; the
command carries the input zero point, the output zero point and the fused activation's
clamp. A GEMM larger than the engine's buffers is split by the host into commands that
fit, by :func:`sim.schedule.schedule_gemm` (the one copy of the tiling rules, shared with
``sim.perf``): at most ``max_m`` rows, ``max_k`` taps and ``max_n`` columns each. A K
beyond ``max_k`` is split only on an engine without a requantizer: each command returns
the raw partial sums of its taps and the host adds them (wrapping to 32 bits, as the
accumulator does) before it requantizes; a requantizing engine cannot carry partial sums,
so such a layer is refused naming the layer and the ``max_k`` it needs.

FULLY_CONNECTED on a requantizing engine uses the engine's integer requantizer
(gemmlowp's two-step rounding), while TensorFlow Lite's reference kernel requantizes in
double precision; the two can differ by one in rare elements. :func:`engine_layer_output`
computes what the engine computes, so a runner counts those elements instead of hiding
them. An engine without a requantizer (``requant=False``, 32-bit accumulators out) is
exact for every layer: it returns ``sum((a - a_zp) * w)`` and the host adds the bias and
requantizes each layer as TensorFlow Lite does (two-step for convolutions, double for
FULLY_CONNECTED), at the price of four bytes per output instead of one.
"""

from dataclasses import dataclass

import numpy as np

import golden
from hw.config import ArrayConfig
from sim.schedule import ScheduleError, schedule_gemm
from sim.topology import Layer

from .graph import Graph

__all__ = ["ENGINE_OPS", "Command", "LayerPlan", "LoweringError", "check_engine",
           "engine_command_output", "engine_layer_output", "host_requantize", "perf_layers",
           "plan_layer", "plan_network"]

#: The ops that run on the engine; all others run on the host.
ENGINE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class LoweringError(ValueError):
    """A graph or a layer that the engine cannot run as configured."""


@dataclass(frozen=True)
class Command:
    """One engine GEMM command of a layer: which rows and output channels it computes.

    Members
    -------
    group : int
        The depthwise group (0 for other layers).
    rows : (int, int)
        ``[start, stop)`` rows of the layer's ``A`` (output pixels).
    cols : (int, int)
        ``[start, stop)`` columns of the group's ``W`` (output channels of the group).
    depth : (int, int) or None
        ``[start, stop)`` taps (rows of ``W``, columns of ``A``) when the layer's K is split
        (raw engines only: the host adds the partial sums); None for all of K.
    """

    group: int
    rows: tuple
    cols: tuple
    depth: tuple | None = None

    @property
    def m(self):
        return self.rows[1] - self.rows[0]

    @property
    def n(self):
        return self.cols[1] - self.cols[0]


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """An engine layer planned for one batch size.

    Members
    -------
    op_index : int
    kind : str
    m, k, n : int
        The GEMM of one group: ``m`` output pixels (times the batch), ``k`` taps, ``n``
        output channels (of the group, for a depthwise layer).
    macs : int
        Useful multiply-accumulates of the whole layer (no padding taps, no zeros of a
        block-diagonal weight matrix).
    weights : tuple of numpy.ndarray
        ``W`` (K x N_g, int64) of each group.
    channels : tuple of (int, int)
        ``[start, stop)`` output channels of each group.
    in_channels : tuple of (int, int)
        ``[start, stop)`` input channels of each group (all of them but for depthwise).
    commands : tuple of Command
        In the order the engine runs them.
    bias, m0, shift : numpy.ndarray of int64, one per output channel
    multiplier : numpy.ndarray of float64, one per output channel
        The real multiplier ``s_x * s_w[c] / s_y`` that ``(m0, shift)`` approximate.
    a_zero_point, out_zero_point, act_min, act_max : int
    engine_requantizes : bool
        Whether the engine's requantizer finishes the outputs (else the host does).
    out_shape : tuple of int
        The output tensor's shape for this batch.
    """

    op_index: int
    kind: str
    m: int
    k: int
    n: int
    macs: int
    weights: tuple
    channels: tuple
    in_channels: tuple
    commands: tuple
    bias: np.ndarray
    m0: np.ndarray
    shift: np.ndarray
    multiplier: np.ndarray
    a_zero_point: int
    out_zero_point: int
    act_min: int
    act_max: int
    out_shape: tuple
    geometry: dict
    engine_requantizes: bool = True

    @property
    def groups(self):
        return len(self.weights)

    def command_shapes(self):
        """``(M, K, N)`` of every command, in order."""
        return [(c.m, self._taps(c)[1] - self._taps(c)[0], c.n) for c in self.commands]

    def _taps(self, cmd):
        return cmd.depth if cmd.depth is not None else (0, self.weights[cmd.group].shape[0])

    def command_macs(self):
        """Useful MACs of every command (a depthwise group's zeros do not count)."""
        macs = []
        for cmd, (m, k, n) in zip(self.commands, self.command_shapes(), strict=True):
            lo, hi = self.in_channels[cmd.group]
            # A depthwise group is never split along K (its g is chosen within max_k).
            per_column = k // (hi - lo) if self.kind == "DEPTHWISE_CONV_2D" else k
            macs.append(m * per_column * n)
        return macs

    def operands(self, x):
        """``A`` (M x K, int64) of each group for the layer's input tensor ``x``."""
        x = np.asarray(x)
        if self.kind == "FULLY_CONNECTED":
            return (x.reshape(-1, self.k).astype(np.int64),)
        g = self.geometry
        out = []
        for lo, hi in self.in_channels:
            patches = golden.im2col(x[..., lo:hi], g["kernel"], g["stride"], g["padding"],
                                    self.a_zero_point, g["dilation"])
            out.append(patches.astype(np.int64))
        return tuple(out)

    def job_entries(self, x, label=""):
        """The commands as explicit GEMM job entries of :func:`hw.regress.run_regression`."""
        entries = []
        for a, cmd in self._command_operands(x):
            lo, hi = self.output_channels(cmd)
            k0, k1 = self._taps(cmd)
            taps = f" taps {k0}:{k1}" if cmd.depth is not None else ""
            entry = {"label": f"{label}op{self.op_index} {self.kind} g{cmd.group} "
                              f"rows {cmd.rows[0]}:{cmd.rows[1]} cols {lo}:{hi}{taps}",
                     "a": a.tolist(),
                     "w": self.weights[cmd.group][k0:k1, cmd.cols[0]:cmd.cols[1]].tolist(),
                     "a_zero_point": self.a_zero_point}
            if self.engine_requantizes:
                entry.update(bias=self.bias[lo:hi].tolist(), m0=self.m0[lo:hi].tolist(),
                             shift=self.shift[lo:hi].tolist(),
                             out_zero_point=self.out_zero_point, act_min=self.act_min,
                             act_max=self.act_max)
            entries.append(entry)
        return entries

    def output_channels(self, cmd):
        """``(start, stop)`` of the layer's output channels that ``cmd`` computes."""
        base = self.channels[cmd.group][0]
        return base + cmd.cols[0], base + cmd.cols[1]

    def _command_operands(self, x):
        groups = self.operands(x)
        for cmd in self.commands:
            k0, k1 = self._taps(cmd)
            yield groups[cmd.group][cmd.rows[0]:cmd.rows[1], k0:k1], cmd


def check_engine(config: ArrayConfig):
    """Refuse an engine that cannot run int8 TFLite layers exactly.

    It must be a ``mac`` engine whose operands hold int8 (signed, at least 8 bits) and
    whose accumulator is 32 bits wide (TFLite's), and either requantize to outputs that
    hold int8 or emit its raw accumulators (the host then requantizes).
    """
    problems = []
    if config.pe_mode != "mac":
        problems.append(f"pe_mode 'mac' (not {config.pe_mode!r})")
    if config.threshold:
        problems.append("a requantizer or raw outputs (not --threshold)")
    if not (config.a_signed and config.a_bits >= 8):
        problems.append(f"signed activations of at least 8 bits (not a_bits {config.a_bits}, "
                        f"a_signed {config.a_signed})")
    if not (config.w_signed and config.w_bits >= 8):
        problems.append(f"signed weights of at least 8 bits (not w_bits {config.w_bits}, "
                        f"w_signed {config.w_signed})")
    if config.requant and not (config.out_signed and config.out_bits >= 8):
        problems.append(f"signed outputs of at least 8 bits (not out_bits {config.out_bits}, "
                        f"out_signed {config.out_signed})")
    if config.acc_bits != 32:
        problems.append(f"acc_bits 32 (not {config.acc_bits})")
    if problems:
        raise LoweringError("int8 TFLite layers need an engine with " + ", ".join(problems))


def _quant(graph, index, what, op):
    t = graph.tensor(index)
    if t is None or t.quant is None:
        raise LoweringError(f"op {op.index} ({op.kind}): its {what} tensor is not quantized")
    return t


def _group_size(config, kind, taps, mult, channels, op):
    if kind != "DEPTHWISE_CONV_2D":
        return channels
    if taps > config.max_k:
        raise LoweringError(f"op {op.index} (DEPTHWISE_CONV_2D) needs K = {taps} per channel, "
                            f"over the engine's max_k {config.max_k}; build it with "
                            f"--max-k {taps} or more")
    g = max(1, config.cols // mult)
    g = min(g, config.max_k // taps, max(1, config.max_n // mult), channels)
    return g


def plan_layer(graph: Graph, op, config: ArrayConfig, batch=1):
    """Plan one engine op of ``graph`` for ``batch`` inputs; see the module docstring."""
    if op.kind not in ENGINE_OPS:
        raise LoweringError(f"op {op.index} ({op.kind}) does not run on the engine; engine "
                            f"ops: {', '.join(ENGINE_OPS)}")
    x_t = _quant(graph, op.inputs[0], "input", op)
    w_t = _quant(graph, op.inputs[1], "weight", op)
    y_t = _quant(graph, op.outputs[0], "output", op)
    b_t = graph.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    if w_t.data is None:
        raise LoweringError(f"op {op.index} ({op.kind}): its weights are not constant")
    if np.any(w_t.quant.zero_point != 0):
        raise LoweringError(f"op {op.index} ({op.kind}): weights must be symmetric (zero "
                            f"point 0), not {int(w_t.quant.zero_point[0])}")
    w = w_t.data.astype(np.int64)
    x_shape = (batch,) + tuple(x_t.shape[1:])
    opts = op.options
    geometry = {}
    if op.kind == "FULLY_CONNECTED":
        n_out, k = w.shape
        rows = int(np.prod(x_shape)) // k
        if rows * k != int(np.prod(x_shape)):
            raise LoweringError(f"op {op.index} (FULLY_CONNECTED): input of shape {x_shape} "
                                f"does not flatten to rows of {k}")
        m, weights, in_ch, mult = rows, [w.T], [(0, k)], 1
        out_shape = (batch,) + tuple(y_t.shape[1:])
        if int(np.prod(out_shape)) != rows * n_out:
            out_shape = (rows, n_out)
        out_channels = n_out
    else:
        geometry = {"kernel": tuple(w.shape[1:3]), "stride": tuple(opts["stride"]),
                    "padding": opts["padding"], "dilation": tuple(opts.get("dilation", (1, 1)))}
        oh, ow, _, _ = golden.conv_output_shape(x_shape[1], x_shape[2], geometry["kernel"],
                                                geometry["stride"], geometry["padding"],
                                                geometry["dilation"])
        m = batch * oh * ow
        taps = w.shape[1] * w.shape[2]
        cin = x_shape[3]
        if op.kind == "CONV_2D":
            out_channels = w.shape[0]
            weights, in_ch, mult = [w.reshape(out_channels, -1).T], [(0, cin)], 1
        else:
            mult = int(opts.get("depth_multiplier", w.shape[3] // cin))
            out_channels = w.shape[3]
            if out_channels != cin * mult:
                raise LoweringError(f"op {op.index} (DEPTHWISE_CONV_2D): {out_channels} output "
                                    f"channels is not {cin} inputs x multiplier {mult}")
            g = _group_size(config, op.kind, taps, mult, cin, op)
            weights, in_ch = [], []
            for c0 in range(0, cin, g):
                c1 = min(c0 + g, cin)
                block = np.zeros((taps * (c1 - c0), (c1 - c0) * mult), dtype=np.int64)
                for i in range(c1 - c0):
                    for j in range(mult):
                        col = w[0, :, :, (c0 + i) * mult + j].reshape(-1)
                        block[i::c1 - c0, i * mult + j] = col
                weights.append(block)
                in_ch.append((c0, c1))
        out_shape = (batch, oh, ow, out_channels)
    channels, commands, start = [], [], 0
    for gi, wg in enumerate(weights):
        channels.append((start, start + wg.shape[1]))
        start += wg.shape[1]
        try:
            schedule = schedule_gemm(config, m, wg.shape[0], wg.shape[1])
        except ScheduleError:
            k = wg.shape[0]
            raise LoweringError(f"op {op.index} ({op.kind}) needs K = {k}, over the engine's "
                                f"max_k {config.max_k}; build it with --max-k {k} or more, "
                                f"or without the requantizer (--no-requant: the host adds "
                                f"the partial sums of K split into commands)") from None
        for c in schedule.commands:
            whole = c.depth == (0, wg.shape[0])
            commands.append(Command(gi, c.rows, c.cols, None if whole else c.depth))
    bias = np.zeros(out_channels, dtype=np.int64)
    if b_t is not None:
        if b_t.data is None:
            raise LoweringError(f"op {op.index} ({op.kind}): its bias is not constant")
        bias = b_t.data.astype(np.int64).reshape(-1)
    x_scale, y_scale = x_t.quant.scale[0], y_t.quant.scale[0]
    w_scale = np.broadcast_to(w_t.quant.scale, (out_channels,))
    multiplier = golden.real_multiplier(x_scale, w_scale, y_scale)
    m0, shift = golden.quantize_multiplier(multiplier)
    y_zp = int(y_t.quant.zero_point[0])
    act_min, act_max = golden.activation_range(opts.get("activation", "linear"),
                                               float(y_scale), y_zp)
    # Narrower output codes (Quant.bits) clamp too: the engine gets the intersection.
    code_lo, code_hi = y_t.code_range
    act_min, act_max = max(act_min, code_lo), min(act_max, code_hi)
    if act_min > act_max:
        raise LoweringError(f"op {op.index} ({op.kind}): the fused activation's range and the "
                            f"output's {y_t.quant.bits}-bit codes do not overlap")
    w_lo, w_hi = golden.qrange(config.w_bits, config.w_signed)
    if w.size and (int(w.min()) < w_lo or int(w.max()) > w_hi):
        raise LoweringError(f"op {op.index} ({op.kind}) has weights in {int(w.min())}.."
                            f"{int(w.max())}, outside the engine's {config.w_bits}-bit "
                            f"{'signed' if config.w_signed else 'unsigned'} weights "
                            f"({w_lo}..{w_hi}); build it with --w-bits "
                            f"{max(int(abs(w).max()), 1).bit_length() + 1} or more")
    useful_k = (w.shape[1] if op.kind == "FULLY_CONNECTED"
                else w.shape[1] * w.shape[2] * (1 if op.kind == "DEPTHWISE_CONV_2D"
                                                else w.shape[3]))
    return LayerPlan(
        op_index=op.index, kind=op.kind, m=m, k=weights[0].shape[0], n=weights[0].shape[1],
        macs=m * useful_k * out_channels, weights=tuple(weights), channels=tuple(channels),
        in_channels=tuple(in_ch), commands=tuple(commands), bias=bias,
        m0=np.asarray(m0, dtype=np.int64).reshape(-1),
        shift=np.asarray(shift, dtype=np.int64).reshape(-1),
        multiplier=np.asarray(multiplier, dtype=np.float64).reshape(-1),
        a_zero_point=int(x_t.quant.zero_point[0]), out_zero_point=y_zp, act_min=act_min,
        act_max=act_max, out_shape=out_shape, geometry=geometry,
        engine_requantizes=bool(config.requant))


def perf_layers(graph: Graph, config: ArrayConfig, batch=1):
    """The engine commands of ``graph`` as :class:`sim.topology.Layer` rows for ``sim.perf``.

    Consecutive commands of one op with the same shape become one row run ``count`` times,
    named ``"<op index>:<kind>"``; their useful MACs exclude a depthwise group's zeros.
    """
    layers = []
    for plan in plan_network(graph, config, batch).values():
        runs = []
        for shape, macs in zip(plan.command_shapes(), plan.command_macs(), strict=True):
            if runs and runs[-1][0] == shape:
                runs[-1][1] += 1
                runs[-1][2] += macs
            else:
                runs.append([shape, 1, macs])
        for i, (shape, count, macs) in enumerate(runs):
            name = f"{plan.op_index}:{plan.kind}" + (f" [{i + 1}/{len(runs)}]"
                                                     if len(runs) > 1 else "")
            layers.append(Layer.from_gemm(name, *shape, count=count, useful_macs=macs))
    return layers


def plan_network(graph: Graph, config: ArrayConfig, batch=1):
    """``{op index: LayerPlan}`` of every engine op of ``graph``; the other ops stay on the host.

    Raises
    ------
    LoweringError
        If the engine cannot run int8 TFLite layers (:func:`check_engine`) or a layer does
        not fit it; the message names the layer and what it needs.
    """
    check_engine(config)
    return {op.index: plan_layer(graph, op, config, batch) for op in graph.ops
            if op.kind in ENGINE_OPS}


def engine_command_output(plan: LayerPlan, a, cmd: Command):
    """What the engine returns for one command.

    A requantizing engine: the int32 GEMM plus bias, then the integer requantizer (int8).
    A raw engine: the int32 accumulators ``sum((a - a_zp) * w)``, without bias.
    """
    lo, hi = plan.output_channels(cmd)
    k0, k1 = plan._taps(cmd)
    w = plan.weights[cmd.group][k0:k1, cmd.cols[0]:cmd.cols[1]]
    if not plan.engine_requantizes:
        return golden.gemm(a, w, plan.a_zero_point, 0)
    acc = golden.gemm(a, w, plan.a_zero_point, 0, plan.bias[lo:hi])
    return golden.requantize(acc, plan.m0[lo:hi], plan.shift[lo:hi], plan.out_zero_point,
                             plan.act_min, plan.act_max)


def host_requantize(plan: LayerPlan, acc):
    """The host's output stage for a raw engine: TensorFlow Lite's for the layer's kind.

    ``wrap(acc + bias)``, then gemmlowp's two-step rounding for convolutions and the
    double-precision requantization of the reference FULLY_CONNECTED kernel.
    """
    acc = golden.wrap(np.asarray(acc, dtype=np.int64) + plan.bias, 32)
    if plan.kind == "FULLY_CONNECTED":
        return golden.requantize_fp64(acc, plan.multiplier, plan.out_zero_point, plan.act_min,
                                      plan.act_max)
    return golden.requantize(acc, plan.m0, plan.shift, plan.out_zero_point, plan.act_min,
                             plan.act_max)


def engine_layer_output(plan: LayerPlan, x):
    """The layer's int8 output as the engine (and for a raw engine the host) computes it."""
    if plan.engine_requantizes:
        out = np.empty((plan.m, int(plan.channels[-1][1])), dtype=np.int8)
    else:
        # Partial sums of a K split add up on the host, wrapping as the accumulator does.
        out = np.zeros((plan.m, int(plan.channels[-1][1])), dtype=np.int64)
    for a, cmd in plan._command_operands(x):
        lo, hi = plan.output_channels(cmd)
        if plan.engine_requantizes:
            out[cmd.rows[0]:cmd.rows[1], lo:hi] = engine_command_output(plan, a, cmd)
        else:
            out[cmd.rows[0]:cmd.rows[1], lo:hi] += engine_command_output(plan, a, cmd)
    if not plan.engine_requantizes:
        out = golden.wrap(out, 32)
        out = host_requantize(plan, out)
    return out.reshape(plan.out_shape)
