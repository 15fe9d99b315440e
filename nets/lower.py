"""Lowering of a graph's convolutions and fully connected layers onto engine GEMM commands.

One pass over a :class:`~nets.graph.Graph` finds the ops the engine runs (:data:`ENGINE_OPS`:
TFLite's CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, and qmac's ``QMAC_XNOR_*`` and
``QMAC_BITSERIAL_*``) and plans each as GEMM commands that fit an
:class:`~hw.config.ArrayConfig`; every other op stays on the host, in golden.

Which op runs on which PE mode
------------------------------
=================================  =========  ================================================
op                                 pe_mode    command
=================================  =========  ================================================
CONV_2D, DEPTHWISE_CONV_2D,        mac        ``a_zero_point`` the input's zero point; operand
FULLY_CONNECTED                               widths that hold the codes (int8, or the
                                              ``Quant.bits`` of a narrow graph)
QMAC_XNOR_CONV_2D / _FULLY_...     xnor       ±1 operands, padded taps -1
QMAC_BITSERIAL_CONV_2D / _FULLY..  bitserial  ``a_planes``/``w_planes`` the op's ``a_bits`` and
                                              ``w_bits``; unsigned activations, signed weights
=================================  =========  ================================================

An op with ``output="threshold"`` needs a threshold engine (``--threshold``): the command
carries its per-channel thresholds and inversions and the engine's output bits become the
op's ±1 codes. Every other op needs a requantizing engine (the command carries bias, M0,
shift, output zero point and clamp) or a raw one (the host finishes). Each layer's
requirements (:func:`layer_engine`) are checked against the engine that runs it
(:func:`check_layer_engine`); a refusal is one line naming the op, its index, what the
engine lacks and the flags that give it. :func:`engines_for` derives the engines of a whole
network from one base configuration.

How each op becomes GEMMs
-------------------------
* CONV_2D (and the ``QMAC_*_CONV_2D`` ops): im2col of the input, padded taps holding the
  input zero point (so they add nothing; -1 for xnor, whose hardware has no zero, as golden
  pads), ``A (M x K) = patches`` with ``M = batch * out_h * out_w`` and
  ``K = kh * kw * in_channels`` in the filter's ``(H, W, I)`` order, ``W (K x N)`` the
  OHWI filter transposed, ``N = out_channels``.
* FULLY_CONNECTED (and ``QMAC_*_FULLY_CONNECTED``): ``A`` the input flattened to
  ``(rows, in)``, ``W`` the ``(out, in)`` weights transposed.
* DEPTHWISE_CONV_2D: output channel ``c * multiplier + j`` sees input channel ``c`` only.
  Groups of ``g`` input channels become one GEMM whose ``A`` holds the im2col patches of
  those channels (``K = kh * kw * g``) and whose ``W`` is block diagonal (``N = g *
  multiplier``, zeros where a column's input channel is not the row's). ``g`` is chosen
  so that one group fills the array's columns (``g = cols // multiplier``, at least 1,
  within ``max_k`` and ``max_n``): a GEMM per channel would use one column of the array
  and round ``kh * kw`` up to whole K chunks, while the group pays for its zeros instead.
  Either way a depthwise layer uses at most ``1 / g`` of the PEs usefully; the reports
  count useful MACs only, so their utilization is the real one.

Every requantizing GEMM gets the per-channel requantization of its output channels on the
``par`` stream: ``bias``, and ``(m0, shift) = QuantizeMultiplier(s_x * s_w[c] / s_y)``; the
command carries the input zero point, the output zero point and the fused activation's
clamp (intersected with the output's code range). A GEMM larger than the engine's buffers is
split by the host into commands that fit, by :func:`sim.schedule.schedule_gemm` (the one
copy of the tiling rules, shared with ``sim.perf``): at most ``max_m`` rows, ``max_k`` taps
and ``max_n`` columns each. A K beyond ``max_k`` is split only on an engine with raw
outputs (no requantizer, no thresholds): each command returns the raw partial sums of its
taps and the host adds them (wrapping to 32 bits, as the accumulator does) before it
requantizes; an engine with an output stage cannot carry partial sums, so such a layer is
refused naming the layer and the ``max_k`` it needs.

FULLY_CONNECTED with int8 weights on a requantizing engine uses the engine's integer
requantizer (gemmlowp's two-step rounding), while TensorFlow Lite's reference kernel (and
golden) requantizes in double precision; the two can differ by one in rare elements.
:func:`engine_layer_output` computes what the engine computes, so a runner counts those
elements instead of hiding them. An engine without a requantizer (``requant=False``, 32-bit
accumulators out) is exact for every layer: it returns ``sum((a - a_zp) * w)`` and the host
adds the bias and requantizes each layer as golden does (two-step, and double precision for
an int8 FULLY_CONNECTED), at the price of four bytes per output instead of one.
"""

from dataclasses import dataclass

import numpy as np

import golden
from hw.config import ArrayConfig, field_flags
from sim.schedule import ScheduleError, schedule_gemm
from sim.topology import Layer

from .graph import Graph

__all__ = ["ENGINE_OPS", "LOWBIT_OPS", "TFLITE_ENGINE_OPS", "Command", "LayerNeeds", "LayerPlan",
           "LoweringError", "check_engine", "check_layer_engine", "engine_command_output",
           "engine_layer_output", "engines_for", "host_requantize", "layer_engine",
           "layer_needs", "op_pe_mode", "perf_layers", "plan_layer", "plan_network"]

#: TensorFlow Lite's ops that run on the engine (a ``mac`` engine).
TFLITE_ENGINE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
#: qmac's own engine ops (:mod:`nets.graph`) and the PE mode each needs.
LOWBIT_OPS = {"QMAC_XNOR_CONV_2D": "xnor", "QMAC_XNOR_FULLY_CONNECTED": "xnor",
              "QMAC_BITSERIAL_CONV_2D": "bitserial",
              "QMAC_BITSERIAL_FULLY_CONNECTED": "bitserial"}
#: The ops that run on the engine; all others run on the host.
ENGINE_OPS = TFLITE_ENGINE_OPS + tuple(LOWBIT_OPS)
#: Accumulator width every engine op needs: golden accumulates in int32, as TFLite does.
ACC_BITS = 32


class LoweringError(ValueError):
    """A graph or a layer that the engine cannot run as configured."""


def op_pe_mode(op):
    """The PE mode that runs ``op``: ``"xnor"``/``"bitserial"`` for the ``QMAC_`` ops, else
    ``"mac"``."""
    return LOWBIT_OPS.get(op.kind, "mac")


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
    pe_mode : str
        The PE mode that runs it (:func:`op_pe_mode`).
    planes : (int, int) or None
        Bit-serial layers: ``(a_planes, w_planes)`` of every command.
    pad_value : int
        The code of a padded tap in the im2col patches (the input zero point; -1 for xnor).
    thresholds, invert : numpy.ndarray of int64 or None
        Threshold layers: the per-channel thresholds and inversions; the engine's output bits
        ``b`` become the codes ``2 * b - 1``.
    out_dtype : str
        The output tensor's dtype.
    fp64_requant : bool
        The host's requantization (raw engines) is TFLite's double-precision one (an int8
        FULLY_CONNECTED), else the two-step one.
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
    pe_mode: str = "mac"
    planes: tuple | None = None
    pad_value: int | None = None
    thresholds: np.ndarray | None = None
    invert: np.ndarray | None = None
    out_dtype: str = "int8"
    fp64_requant: bool = False

    @property
    def threshold_output(self):
        """True when the engine's threshold compares finish the layer."""
        return self.thresholds is not None

    @property
    def groups(self):
        return len(self.weights)

    def command_shapes(self):
        """``(M, K, N)`` of every command, in order."""
        return [(c.m, self._taps(c)[1] - self._taps(c)[0], c.n) for c in self.commands]

    def _taps(self, cmd):
        return cmd.depth if cmd.depth is not None else (0, self.weights[cmd.group].shape[0])

    def model_shapes(self):
        """``(M, K, N)`` of every command, with ``(a_planes, w_planes)`` for a bit-serial
        layer: the arguments of :func:`sim.engine_model.gemm_schedule`."""
        extra = tuple(self.planes) if self.planes else ()
        return [shape + extra for shape in self.command_shapes()]

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
        if self.kind.endswith("FULLY_CONNECTED"):
            return (x.reshape(-1, self.k).astype(np.int64),)
        g = self.geometry
        out = []
        for lo, hi in self.in_channels:
            patches = golden.im2col(x[..., lo:hi], g["kernel"], g["stride"], g["padding"],
                                    self.pad_value, g["dilation"])
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
            if self.planes:
                entry["planes"] = list(self.planes)
            if self.threshold_output:
                entry.update(threshold=self.thresholds[lo:hi].tolist(),
                             invert=self.invert[lo:hi].tolist())
            elif self.engine_requantizes:
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
    hold int8 or emit its raw accumulators (the host then requantizes). Graphs with other
    layers (narrow codes, ``QMAC_`` ops) are checked layer by layer instead
    (:func:`check_layer_engine`).
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
    if config.acc_bits != ACC_BITS:
        problems.append(f"acc_bits 32 (not {config.acc_bits})")
    if problems:
        raise LoweringError("int8 TFLite layers need an engine with " + ", ".join(problems))


# --- what a layer needs of its engine ---------------------------------------------------------

@dataclass(frozen=True)
class LayerNeeds:
    """What an engine needs to run one op.

    Members
    -------
    pe_mode : str
    threshold : bool
        A threshold output stage (else a requantizer, or raw accumulators for the host).
    a_range, w_range : (int, int)
        The integers the operands take: the codes of the tensors (and, ``mac``, the input
        zero point); ``bitserial`` the range of the op's ``a_bits`` unsigned and ``w_bits``
        signed planes; ``xnor`` -1..1.
    out_range : (int, int) or None
        ``(act_min, act_max)`` of a requantizing layer; None for a threshold layer.
    """

    pe_mode: str
    threshold: bool
    a_range: tuple
    w_range: tuple
    out_range: tuple | None


def _int_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _width(lo, hi, signed=None, min_bits=1):
    """``(bits, signed)`` of the narrowest integer holding ``lo..hi`` (unsigned when ``lo >=
    0``, unless ``signed`` says)."""
    signed = lo < 0 if signed is None else signed
    bits = min_bits
    while True:
        r_lo, r_hi = _int_range(bits, signed)
        if r_lo <= lo and hi <= r_hi:
            return bits, signed
        bits += 1


def _quant(graph, index, what, op):
    t = graph.tensor(index)
    if t is None or t.quant is None:
        raise LoweringError(f"op {op.index} ({op.kind}): its {what} tensor is not quantized")
    return t


def _output_clamp(graph, op):
    """``(act_min, act_max)``: the fused activation's clamp on the output's dtype, intersected
    with its code range (``Quant.bits``), as golden's executor clamps."""
    y_t = _quant(graph, op.outputs[0], "output", op)
    info = np.iinfo(y_t.dtype)
    act_min, act_max = golden.activation_range(op.options.get("activation", "linear"),
                                               float(y_t.quant.scale[0]),
                                               int(y_t.quant.zero_point[0]), info.bits,
                                               info.min < 0)
    code_lo, code_hi = y_t.code_range
    act_min, act_max = max(act_min, code_lo), min(act_max, code_hi)
    if act_min > act_max:
        raise LoweringError(f"op {op.index} ({op.kind}): the fused activation's range and the "
                            f"output's {y_t.quant.bits}-bit codes do not overlap")
    return int(act_min), int(act_max)


def layer_needs(graph: Graph, op):
    """The :class:`LayerNeeds` of an engine op of ``graph``."""
    if op.kind not in ENGINE_OPS:
        raise LoweringError(f"op {op.index} ({op.kind}) does not run on the engine; engine "
                            f"ops: {', '.join(ENGINE_OPS)}")
    mode = op_pe_mode(op)
    x_t = _quant(graph, op.inputs[0], "input", op)
    w_t = _quant(graph, op.inputs[1], "weight", op)
    threshold = op.options.get("output") == "threshold"
    if mode == "xnor":
        a_range = w_range = (-1, 1)
    elif mode == "bitserial":
        a_range = _int_range(int(op.options["a_bits"]), False)
        w_range = _int_range(int(op.options["w_bits"]), True)
    else:
        lo, hi = x_t.code_range
        zp = int(x_t.quant.zero_point[0])
        a_range, w_range = (min(lo, zp), max(hi, zp)), w_t.code_range
    out_range = None if threshold else _output_clamp(graph, op)
    return LayerNeeds(mode, threshold, a_range, w_range, out_range)


#: ArrayConfig fields that :func:`engines_for` keeps from the base configuration.
KEPT_FIELDS = ("rows", "cols", "dataflow", "max_m", "max_k", "max_n", "block_rows",
               "out_depth")


def _engine_for(base: ArrayConfig, needs):
    """The engine of ``base``'s shape that runs every layer of ``needs`` (one mode and stage):
    the narrowest operand and output widths that hold all their codes."""
    first = needs[0]
    a_lo, a_hi = min(n.a_range[0] for n in needs), max(n.a_range[1] for n in needs)
    w_lo, w_hi = min(n.w_range[0] for n in needs), max(n.w_range[1] for n in needs)
    fields = {f: getattr(base, f) for f in KEPT_FIELDS}
    fields.update(pe_mode=first.pe_mode, acc_bits=ACC_BITS, threshold=first.threshold)
    if first.pe_mode == "mac":
        a_bits, a_signed = _width(a_lo, a_hi, min_bits=2)
        w_bits, w_signed = _width(w_lo, w_hi, min_bits=2)
    elif first.pe_mode == "xnor":
        a_bits, a_signed, w_bits, w_signed = 1, True, 1, True
    else:
        a_bits, a_signed = _width(a_lo, a_hi, signed=False)
        w_bits, w_signed = _width(w_lo, w_hi, signed=True)
    fields.update(a_bits=a_bits, a_signed=a_signed, w_bits=w_bits, w_signed=w_signed)
    if first.pe_mode != "mac" and base.pe_mode != "mac":
        fields["pack"] = base.pack
    if first.threshold:
        fields["requant"] = False
    else:
        fields["requant"] = bool(base.requant or base.threshold)
        if fields["requant"]:
            lo = min(n.out_range[0] for n in needs)
            hi = max(n.out_range[1] for n in needs)
            fields["out_bits"], fields["out_signed"] = _width(lo, hi, min_bits=2)
    return ArrayConfig(**fields)


def layer_engine(graph: Graph, op, base: ArrayConfig):
    """The narrowest engine of ``base``'s shape that runs ``op`` (see :func:`engines_for`)."""
    return _engine_for(base, [layer_needs(graph, op)])


def engines_for(graph: Graph, base: ArrayConfig):
    """``{op index: ArrayConfig}``: the engine of each engine op of ``graph``, from ``base``.

    One engine per PE mode and output stage that the graph's layers need: ``base``'s
    ``rows``, ``cols``, ``dataflow``, limits (``max_m``, ``max_k``, ``max_n``), ``block_rows``
    and ``out_depth`` are kept; the PE mode and output stage are the layers'
    (:func:`op_pe_mode`; threshold compares for ``output="threshold"``, else ``base``'s
    requantizer, or its raw outputs with ``requant=False``); the operand and output widths
    are the narrowest that hold the codes of all the layers sharing the engine (``mac``: the
    input codes and zero point, the weight codes, the output clamp; ``bitserial``: the largest
    ``a_bits`` unsigned and ``w_bits`` signed planes; ``xnor``: 1 bit); ``acc_bits`` is 32;
    the packed modes keep ``base``'s ``pack`` when ``base`` is packed, else their default.

    BinaryNet's network (the first layer bit-serial with thresholds, the hidden ones xnor
    with thresholds, the last xnor requantizing) gets three engines; an int8 TFLite model
    one ``mac`` engine with 8-bit operands.
    """
    needs = {op.index: layer_needs(graph, op) for op in graph.ops if op.kind in ENGINE_OPS}
    groups = {}
    for index, need in needs.items():
        groups.setdefault((need.pe_mode, need.threshold), []).append(index)
    engines = {}
    for members in groups.values():
        config = _engine_for(base, [needs[i] for i in members])
        engines.update({i: config for i in members})
    return dict(sorted(engines.items()))


def check_layer_engine(graph: Graph, op, config: ArrayConfig):
    """Refuse an engine that cannot run ``op`` exactly, in one line naming the op, what the
    engine lacks and the flags that give it.

    Raises
    ------
    LoweringError
    """
    need = layer_needs(graph, op)
    problems, fields = [], {}
    want = _engine_for(config, [need])
    if config.pe_mode != need.pe_mode:
        problems.append(f"pe_mode {need.pe_mode!r} (not {config.pe_mode!r})")
        fields.update(pe_mode=want.pe_mode, a_bits=want.a_bits, w_bits=want.w_bits)
        if want.a_signed != config.a_signed:
            fields["a_signed"] = want.a_signed
        if want.w_signed != config.w_signed:
            fields["w_signed"] = want.w_signed
    if need.threshold and not config.threshold:
        problems.append("threshold outputs (not "
                        f"{'a requantizer' if config.requant else 'raw accumulators'})")
        fields["threshold"] = True
    elif not need.threshold and config.threshold:
        problems.append("a requantizer or raw outputs (not threshold outputs)")
        fields["threshold"] = False
    if config.acc_bits != ACC_BITS:
        problems.append(f"acc_bits {ACC_BITS} (not {config.acc_bits})")
        fields["acc_bits"] = ACC_BITS
    if config.pe_mode == need.pe_mode != "xnor":
        for operand, (lo, hi) in (("a", need.a_range), ("w", need.w_range)):
            bits, signed = getattr(config, f"{operand}_bits"), getattr(config, f"{operand}_signed")
            c_lo, c_hi = _int_range(bits, signed)
            exact_sign = need.pe_mode == "bitserial" and signed != getattr(want,
                                                                           f"{operand}_signed")
            if lo < c_lo or hi > c_hi or exact_sign:
                what = "activations" if operand == "a" else "weights"
                problems.append(f"{what} in {lo}..{hi} (not {bits}-bit "
                                f"{'signed' if signed else 'unsigned'})")
                fields[f"{operand}_bits"] = getattr(want, f"{operand}_bits")
                if getattr(want, f"{operand}_signed") != signed:
                    fields[f"{operand}_signed"] = getattr(want, f"{operand}_signed")
    if not need.threshold and config.requant and not config.threshold:
        lo, hi = need.out_range
        c_lo, c_hi = _int_range(config.out_bits, config.out_signed)
        if lo < c_lo or hi > c_hi:
            problems.append(f"outputs in {lo}..{hi} (not {config.out_bits}-bit "
                            f"{'signed' if config.out_signed else 'unsigned'})")
            fields["out_bits"] = want.out_bits
            if want.out_signed != config.out_signed:
                fields["out_signed"] = want.out_signed
    if problems:
        raise LoweringError(f"op {op.index} ({op.kind}) needs an engine with "
                            f"{', '.join(problems)}; build it with "
                            f"{' '.join(field_flags(fields))}, or derive each layer's engine "
                            f"(nets.engines_for, nets.run --derive-engines)")


def _plain_int8(graph):
    """Whether every engine op is an int8 TFLite layer (int8 codes in, out and in weights)."""
    for op in graph.ops:
        if op.kind not in ENGINE_OPS:
            continue
        if op.kind not in TFLITE_ENGINE_OPS:
            return False
        for index in (op.inputs[0], op.inputs[1], op.outputs[0]):
            t = graph.tensor(index)
            if t is None or t.dtype != "int8" or (t.quant is not None
                                                  and t.quant.bits not in (None, 8)):
                return False
    return True


# --- planning ---------------------------------------------------------------------------------

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
    """Plan one engine op of ``graph`` for ``batch`` inputs; see the module docstring.

    Raises
    ------
    LoweringError
        If ``config`` cannot run the op (:func:`check_layer_engine`) or the op does not fit
        its buffers.
    """
    check_layer_engine(graph, op, config)
    mode = op_pe_mode(op)
    shape_kind = ("FULLY_CONNECTED" if op.kind.endswith("FULLY_CONNECTED") else
                  "DEPTHWISE_CONV_2D" if op.kind == "DEPTHWISE_CONV_2D" else "CONV_2D")
    x_t = _quant(graph, op.inputs[0], "input", op)
    w_t = _quant(graph, op.inputs[1], "weight", op)
    y_t = _quant(graph, op.outputs[0], "output", op)
    if w_t.data is None:
        raise LoweringError(f"op {op.index} ({op.kind}): its weights are not constant")
    if np.any(w_t.quant.zero_point != 0):
        raise LoweringError(f"op {op.index} ({op.kind}): weights must be symmetric (zero "
                            f"point 0), not {int(w_t.quant.zero_point[0])}")
    w = w_t.data.astype(np.int64)
    x_shape = (batch,) + tuple(x_t.shape[1:])
    opts = op.options
    geometry = {}
    if shape_kind == "FULLY_CONNECTED":
        n_out, k = w.shape
        rows = int(np.prod(x_shape)) // k
        if rows * k != int(np.prod(x_shape)):
            raise LoweringError(f"op {op.index} ({op.kind}): input of shape {x_shape} "
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
        if shape_kind == "CONV_2D":
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
                                f"or without an output stage (--no-requant: the host adds "
                                f"the partial sums of K split into commands)") from None
        for c in schedule.commands:
            whole = c.depth == (0, wg.shape[0])
            commands.append(Command(gi, c.rows, c.cols, None if whole else c.depth))
    zeros = np.zeros(out_channels, dtype=np.int64)
    x_zp = int(x_t.quant.zero_point[0])
    stage = {}
    if opts.get("output") == "threshold":
        thresholds, invert = (graph.tensor(op.inputs[i]) for i in (2, 3))
        if thresholds is None or invert is None or thresholds.data is None \
                or invert.data is None:
            raise LoweringError(f"op {op.index} ({op.kind}): its thresholds and inversions "
                                f"must be constant inputs 2 and 3")
        bias, m0, shift, multiplier = zeros, zeros, zeros, zeros.astype(np.float64)
        y_zp, act_min, act_max = 0, -1, 1
        stage = dict(thresholds=thresholds.data.astype(np.int64).reshape(-1),
                     invert=invert.data.astype(np.int64).reshape(-1))
    else:
        b_t = graph.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
        bias = zeros
        if b_t is not None:
            if b_t.data is None:
                raise LoweringError(f"op {op.index} ({op.kind}): its bias is not constant")
            bias = b_t.data.astype(np.int64).reshape(-1)
        x_scale, y_scale = x_t.quant.scale[0], y_t.quant.scale[0]
        w_scale = np.broadcast_to(w_t.quant.scale, (out_channels,))
        multiplier = golden.real_multiplier(x_scale, w_scale, y_scale)
        m0, shift = golden.quantize_multiplier(multiplier)
        y_zp = int(y_t.quant.zero_point[0])
        act_min, act_max = _output_clamp(graph, op)
    useful_k = (w.shape[1] if shape_kind == "FULLY_CONNECTED"
                else w.shape[1] * w.shape[2] * (1 if shape_kind == "DEPTHWISE_CONV_2D"
                                                else w.shape[3]))
    planes = ((int(opts["a_bits"]), int(opts["w_bits"])) if mode == "bitserial" else None)
    return LayerPlan(
        op_index=op.index, kind=op.kind, m=m, k=weights[0].shape[0], n=weights[0].shape[1],
        macs=m * useful_k * out_channels, weights=tuple(weights), channels=tuple(channels),
        in_channels=tuple(in_ch), commands=tuple(commands), bias=bias,
        m0=np.asarray(m0, dtype=np.int64).reshape(-1),
        shift=np.asarray(shift, dtype=np.int64).reshape(-1),
        multiplier=np.asarray(multiplier, dtype=np.float64).reshape(-1),
        a_zero_point=x_zp if mode == "mac" else 0, out_zero_point=y_zp, act_min=act_min,
        act_max=act_max, out_shape=out_shape, geometry=geometry,
        engine_requantizes=bool(config.requant), pe_mode=mode, planes=planes,
        pad_value={"mac": x_zp, "xnor": -1, "bitserial": 0}[mode],
        out_dtype=y_t.dtype,
        fp64_requant=op.kind == "FULLY_CONNECTED" and w_t.dtype == "int8", **stage)


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


def plan_network(graph: Graph, config, batch=1):
    """``{op index: LayerPlan}`` of every engine op of ``graph``; the other ops stay on the host.

    ``config`` is one :class:`ArrayConfig` that runs every engine op, or ``{op index:
    ArrayConfig}`` (e.g. :func:`engines_for`) giving each op its own.

    Raises
    ------
    LoweringError
        If an engine cannot run its layer or the layer does not fit it; the message names
        the layer and what it needs. An int8 TFLite graph on one engine is checked as a
        whole first (:func:`check_engine`).
    """
    indices = [op.index for op in graph.ops if op.kind in ENGINE_OPS]
    if isinstance(config, ArrayConfig):
        if _plain_int8(graph):
            check_engine(config)
        engines = dict.fromkeys(indices, config)
    else:
        engines = dict(config)
        missing = [i for i in indices if i not in engines]
        if missing:
            raise LoweringError(f"no engine given for engine ops {missing} of the graph")
    return {i: plan_layer(graph, graph.ops[i], engines[i], batch) for i in indices}


# --- what the engine computes -----------------------------------------------------------------

def _accumulators(plan: LayerPlan, a, w):
    """The engine's int32 sums of a command without bias: ``sum((a - a_zp) * w)``, by the
    PE mode's own arithmetic."""
    if plan.pe_mode == "xnor":
        acc = golden.xnor_popcount_gemm(golden.pack_signs(a, axis=1),
                                        golden.pack_signs(w, axis=0), a.shape[1])
        return golden.wrap(np.asarray(acc, dtype=np.int64), ACC_BITS)
    if plan.pe_mode == "bitserial":
        return np.asarray(golden.bitplane_gemm(a, w, *plan.planes, a_signed=False,
                                               w_signed=True), dtype=np.int64)
    return np.asarray(golden.gemm(a, w, plan.a_zero_point, 0), dtype=np.int64)


def _out_type(plan):
    info = np.iinfo(plan.out_dtype)
    return info.bits, bool(info.min < 0)


def engine_command_output(plan: LayerPlan, a, cmd: Command):
    """What the engine returns for one command.

    A requantizing engine: the int32 sums plus bias, then the integer requantizer. A
    threshold engine: the output bits ``(acc >= T) XOR invert``. A raw engine: the int32
    accumulators ``sum((a - a_zp) * w)``, without bias.
    """
    lo, hi = plan.output_channels(cmd)
    k0, k1 = plan._taps(cmd)
    w = plan.weights[cmd.group][k0:k1, cmd.cols[0]:cmd.cols[1]]
    if plan.pe_mode == "mac" and not plan.threshold_output:
        if not plan.engine_requantizes:
            return golden.gemm(a, w, plan.a_zero_point, 0)
        acc = golden.gemm(a, w, plan.a_zero_point, 0, plan.bias[lo:hi])
    else:
        acc = _accumulators(plan, a, w)
        if plan.threshold_output:
            return golden.threshold(acc, plan.thresholds[lo:hi], plan.invert[lo:hi])
        if not plan.engine_requantizes:
            return acc
        acc = golden.wrap(acc + plan.bias[lo:hi], ACC_BITS)
    return golden.requantize(acc, plan.m0[lo:hi], plan.shift[lo:hi], plan.out_zero_point,
                             plan.act_min, plan.act_max, *_out_type(plan))


def host_requantize(plan: LayerPlan, acc):
    """The host's output stage for a raw engine: golden's for the layer.

    ``wrap(acc + bias)``, then the double-precision requantization of the reference
    FULLY_CONNECTED kernel for an int8 FULLY_CONNECTED, gemmlowp's two-step rounding for the
    others.
    """
    acc = golden.wrap(np.asarray(acc, dtype=np.int64) + plan.bias, ACC_BITS)
    if plan.fp64_requant:
        return golden.requantize_fp64(acc, plan.multiplier, plan.out_zero_point, plan.act_min,
                                      plan.act_max, *_out_type(plan))
    return golden.requantize(acc, plan.m0, plan.shift, plan.out_zero_point, plan.act_min,
                             plan.act_max, *_out_type(plan))


def engine_layer_output(plan: LayerPlan, x):
    """The layer's output as the engine (and for a raw engine the host) computes it, in the
    output tensor's dtype (threshold layers: the codes ``2 * bit - 1``)."""
    out = np.zeros((plan.m, int(plan.channels[-1][1])), dtype=np.int64)
    for a, cmd in plan._command_operands(x):
        lo, hi = plan.output_channels(cmd)
        # Only a raw engine splits K: the partial sums of its commands add up on the host.
        out[cmd.rows[0]:cmd.rows[1], lo:hi] += engine_command_output(plan, a, cmd)
    if plan.threshold_output:
        out = 2 * out - 1
    elif not plan.engine_requantizes:
        out = golden.wrap(out, ACC_BITS)
        out = host_requantize(plan, out)
    return np.asarray(out).astype(plan.out_dtype).reshape(plan.out_shape)
