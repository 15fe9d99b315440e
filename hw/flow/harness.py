"""The memory-backed testbench wrapper of an engine: Verilog generated from its port list.

``python -m hw.regress`` runs the cocotb testbench on this wrapper by default (the
``memory`` harness): the engine's input streams are driven from beat memories and the
result stream is received into a result memory, each gated by per-cycle stall patterns
held in pattern memories, so cocotb loads operands and patterns in bulk and wakes up only
when a memory needs refilling or reading (``attn``), instead of once per cycle.

Per-cycle protocol: the same as ``tests/cocotb/gemm_tb.py``'s drivers and monitor (and the
cycle model's ``run_patterns``). ``cycle`` counts clock cycles from the first one after
``rst`` is released (cycle 0). In cycle ``t`` an input source that holds no beat, has a
loaded beat left (``taken != avail``) and has its pattern bit ``t`` set presents its next
beat; a presented beat is held until taken; a beat is taken when valid and ready are both
high. The result stream's ready in cycle ``t`` is its pattern bit ``t``.

Memories (rings; an index ``i`` lives at ``i mod depth``), all written or read by cocotb
through VPI while the clock runs:

* ``<s>_mem`` (``beat_depth`` beats of the stream's payload width, :data:`PACK` beats to a
  word, beat ``i`` in bits ``(i mod PACK) * width`` up: one VPI access moves ``PACK``
  beats) and ``<s>_cyc`` (the cycle in which each beat was taken) per input stream ``s``;
* ``res_mem`` (packed likewise) and ``res_cyc``: result beats and the cycle each was taken;
* ``<s>_pat``/``res_pat``: ``pattern_words`` words of :data:`PATTERN_BITS` cycles
  (bit ``t mod 64`` of word ``t // 64``);
* ``busy_chg``: the cycles in which ``busy`` changed (``busy`` is 0 in cycle 0).

Inputs written by cocotb: ``<s>_avail`` (beats loaded so far), ``<s>_more`` (more beats to
load), ``pat_avail`` (pattern words loaded so far), ``res_read`` and ``chg_read`` (result
beats and busy changes read so far), ``res_expect`` (result beats expected in all),
``idle_limit`` (cycles without a transfer that count as a hang). ``attn`` rises when
cocotb has work: an input ring half empty with beats still to load, the patterns less than
half a ring ahead, the result or busy-change ring half full, all results received
(``done``) or a hang (``hung``). It is acted on within the cycle it rises in, so with
rings of at least a few beats no source ever starves for lack of loading.

The result stream's rules (valid held and payload unchanged while stalled) and the
engine's ``error`` flag are checked here in every cycle: ``rule_errors`` counts broken
rules, ``rule_first`` is the first such cycle and ``rule_kind`` what broke (1 valid dropped,
2 payload changed); ``error_seen``/``error_first`` report ``error``.
"""

import dataclasses

__all__ = ["BEAT_DEPTH", "PACK", "PATTERN_BITS", "PATTERN_WORDS", "TOPLEVEL", "harness_verilog",
           "stream_widths"]

#: Cycles per pattern word.
PATTERN_BITS = 64
#: Entries of each beat and result ring (Python refills or reads one every half ring).
BEAT_DEPTH = 1024
#: Beats per word of the beat and result rings.
PACK = 8
#: Words of each pattern ring (``PATTERN_WORDS * PATTERN_BITS`` cycles ahead at most).
PATTERN_WORDS = 32
#: Module name of the wrapper (the simulator's top level).
TOPLEVEL = "qmac_tb"
_INPUTS = ("cmd", "act", "wgt", "par")
_COUNTER = 32


def _log2(value, what):
    if value < 4 or value & (value - 1):
        raise ValueError(f"{what} must be a power of two of at least 4, not {value}")
    return value.bit_length() - 1


def stream_widths(ports):
    """``{stream: payload width}`` of the engine's streams, from a manifest's port list."""
    widths = {}
    for port in ports:
        name = port["name"]
        if name.endswith("__payload"):
            widths[name[: -len("__payload")]] = int(port["width"])
    return widths


@dataclasses.dataclass(frozen=True)
class _Frame:
    """The sizes every part of the wrapper's text is written from."""
    widths: dict          # stream -> payload width
    inputs: tuple         # the input streams the engine has, in _INPUTS order
    beat_depth: int
    pattern_words: int

    n = _COUNTER

    @property
    def beat_log(self):
        return _log2(self.beat_depth, "beat_depth")

    @property
    def pack_log(self):
        return _log2(PACK, "PACK")

    @property
    def pat_log(self):
        return _log2(self.pattern_words, "pattern_words")

    @property
    def bit_log(self):
        return _log2(PATTERN_BITS, "PATTERN_BITS")

    @property
    def words(self):
        return self.beat_depth // PACK

    @property
    def half(self):
        return self.beat_depth // 2


def harness_verilog(engine, ports, beat_depth=BEAT_DEPTH, pattern_words=PATTERN_WORDS):
    """Verilog text of module :data:`TOPLEVEL` around engine module ``engine``.

    Parameters
    ----------
    engine : str
        Module name of the engine (``NAME`` of ``NAME.v``).
    ports : sequence of dict
        The manifest's port list (``name``, ``direction``, ``width``).
    beat_depth : int
        Entries of every beat and result ring (a power of two).
    pattern_words : int
        Words of every pattern ring (a power of two), :data:`PATTERN_BITS` cycles each.

    The text depends only on its arguments: the same engine gives the same bytes.
    """
    _log2(beat_depth, "beat_depth")
    _log2(PACK, "PACK")
    if beat_depth < 4 * PACK:
        raise ValueError(f"beat_depth must be at least {4 * PACK}, not {beat_depth}")
    _log2(pattern_words, "pattern_words")
    _log2(PATTERN_BITS, "PATTERN_BITS")
    widths = stream_widths(ports)
    inputs = tuple(s for s in _INPUTS if s in widths)
    if "res" not in widths or not {"cmd", "act", "wgt"} <= set(inputs):
        raise ValueError(f"engine ports must include the cmd, act, wgt and res streams, not "
                         f"{sorted(widths)}")
    f = _Frame(widths, inputs, beat_depth, pattern_words)
    lines = [*_module_ports(f, engine), *_memories(f), *_sources(f), *_instance(f, engine),
             *_clocked(f), "endmodule", ""]
    return "\n".join(lines)


def _module_ports(f, engine):
    n, bit_log = f.n, f.bit_log
    lines = [
        "// Generated by hw.flow.harness: memory-backed stream sources and result sink",
        f"// around {engine}; see that module's docstring. Do not edit.",
        "// Every signal of this module is visible to VPI (the testbench loads and reads the",
        "// memories), so the engine can be built without Verilator's --public-flat-rw.",
        "/* verilator public_flat_rw_on */",
        f"module {TOPLEVEL} (",
        "    input wire clk,",
        "    input wire rst,",
    ]
    for s in f.inputs:
        lines += [f"    input wire [{n - 1}:0] {s}_avail,", f"    input wire {s}_more,",
                  f"    output reg [{n - 1}:0] {s}_taken,"]
    lines += [
        f"    input wire [{n - bit_log - 1}:0] pat_avail,",
        f"    input wire [{n - 1}:0] res_read,",
        f"    input wire [{n - 1}:0] res_expect,",
        f"    input wire [{n - 1}:0] chg_read,",
        f"    input wire [{n - 1}:0] idle_limit,",
        f"    output reg [{n - 1}:0] cycle,",
        f"    output reg [{n - 1}:0] res_count,",
        f"    output reg [{n - 1}:0] chg_count,",
        f"    output reg [{n - 1}:0] rule_errors,",
        f"    output reg [{n - 1}:0] rule_first,",
        "    output reg [1:0] rule_kind,",
        "    output reg error_seen,",
        f"    output reg [{n - 1}:0] error_first,",
        "    output wire busy,",
        "    output wire done,",
        "    output wire hung,",
        "    output wire attn",
        ");",
    ]
    return lines


def _memories(f):
    """The rings cocotb loads and reads, and the wrapper's own registers."""
    n, widths = f.n, f.widths
    # The memories are loaded and read by the testbench through VPI, so Verilator sees
    # them as undriven (beats, patterns) or unused (transfer cycles, busy changes).
    lines = ["    /* verilator lint_off UNDRIVEN */", "    /* verilator lint_off UNUSEDSIGNAL */"]
    for s in (*f.inputs, "res"):
        w = widths[s]
        lines += [
            f"    reg [{PACK * w - 1}:0] {s}_mem [0:{f.words - 1}];",
            f"    wire [{n - 1}:0] {s}_index;",
            f"    wire [{n - 1}:0] {s}_offset = {{{n - f.pack_log}'d0, "
            f"{s}_index[{f.pack_log - 1}:0]}} * {n}'d{w};",
            f"    reg [{n - 1}:0] {s}_cyc [0:{f.beat_depth - 1}];",
            f"    reg [{PATTERN_BITS - 1}:0] {s}_pat [0:{f.pattern_words - 1}];",
            f"    wire {s}_bit = {s}_pat[cycle[{f.pat_log + f.bit_log - 1}:{f.bit_log}]]"
            f"[cycle[{f.bit_log - 1}:0]];",
            f"    wire [{w - 1}:0] {s}_payload;",
            f"    wire {s}_valid;",
            f"    wire {s}_ready;",
        ]
    lines += [
        f"    reg [{n - 1}:0] busy_chg [0:{f.beat_depth - 1}];",
        "    /* verilator lint_on UNUSEDSIGNAL */",
        "    /* verilator lint_on UNDRIVEN */",
        "    reg busy_last;",
        f"    reg [{n - 1}:0] idle;",
        "    reg res_stalled;",
        f"    reg [{widths['res'] - 1}:0] res_held;",
        "    wire engine_error;",
    ]
    return lines


def _sources(f):
    """The input sources' and the result sink's handshakes, and ``attn``."""
    n, inputs, half = f.n, f.inputs, f.half
    lines = []
    for s in inputs:
        lines += [
            f"    reg {s}_hold;",
            f"    wire [{n - 1}:0] {s}_left = {s}_avail - {s}_taken;",
            f"    assign {s}_valid = !rst && ({s}_hold || ({s}_left != 0 && {s}_bit));",
            f"    assign {s}_index = {s}_taken;",
            f"    wire [{PACK * f.widths[s] - 1}:0] {s}_word = "
            f"{s}_mem[{s}_taken[{f.beat_log - 1}:{f.pack_log}]];",
            f"    assign {s}_payload = {s}_word[{s}_offset +: {f.widths[s]}];",
        ]
    lines += [
        "    assign res_index = res_count;",
        "    assign res_ready = !rst && res_bit;",
        "    wire transfer = " + " || ".join(f"({s}_valid && {s}_ready)"
                                             for s in (*inputs, "res")) + ";",
        "    assign done = res_count >= res_expect;",
        "    assign hung = idle >= idle_limit;",
        f"    wire [{n - 1}:0] pat_ahead = {{pat_avail, {f.bit_log}'d0}} - cycle;",
        "    assign attn = !rst && (done || hung"
        + "".join(f" || ({s}_more && {s}_left <= {half})" for s in inputs)
        + f" || pat_ahead <= {f.pattern_words * PATTERN_BITS // 2}"
        + f" || res_count - res_read >= {half} || chg_count - chg_read >= {half});",
        "",
    ]
    return lines


def _instance(f, engine):
    lines = [f"    {engine} engine (", "        .clk(clk),", "        .rst(rst),"]
    for s in f.inputs:
        lines += [f"        .{s}__payload({s}_payload),", f"        .{s}__valid({s}_valid),",
                  f"        .{s}__ready({s}_ready),"]
    lines += [
        "        .res__payload(res_payload),",
        "        .res__valid(res_valid),",
        "        .res__ready(res_ready),",
        "        .busy(busy),",
        "        .error(engine_error)",
        "    );",
        "",
    ]
    return lines


def _clocked(f):
    """The one ``always`` block: counters, transfers into the rings, the rule checks."""
    beat_log, pack_log = f.beat_log, f.pack_log
    lines = [
        "    always @(posedge clk) begin",
        "        if (rst) begin",
        "            cycle <= 0;",
        "            idle <= 0;",
        "            res_count <= 0;",
        "            chg_count <= 0;",
        "            res_stalled <= 1'b0;",
        "            res_held <= 0;",
        "            rule_errors <= 0;",
        "            rule_first <= 0;",
        "            rule_kind <= 2'd0;",
        "            error_seen <= 1'b0;",
        "            error_first <= 0;",
        "            busy_last <= 1'b0;",
    ]
    for s in f.inputs:
        lines += [f"            {s}_taken <= 0;", f"            {s}_hold <= 1'b0;"]
    lines += [
        "        end else begin",
        "            cycle <= cycle + 1;",
        "            idle <= transfer ? 0 : idle + 1;",
    ]
    for s in f.inputs:
        lines += [
            f"            if ({s}_valid && {s}_ready) begin",
            f"                {s}_cyc[{s}_taken[{beat_log - 1}:0]] <= cycle;",
            f"                {s}_taken <= {s}_taken + 1;",
            "            end",
            f"            {s}_hold <= {s}_valid && !{s}_ready;",
        ]
    lines += [
        "            if (res_valid && res_ready) begin",
        f"                res_mem[res_count[{beat_log - 1}:{pack_log}]][res_offset +: "
        f"{f.widths['res']}] <= res_payload;",
        f"                res_cyc[res_count[{beat_log - 1}:0]] <= cycle;",
        "                res_count <= res_count + 1;",
        "            end",
        "            if (res_stalled && (!res_valid || res_payload != res_held)) begin",
        "                rule_errors <= rule_errors + 1;",
        "                if (rule_errors == 0) begin",
        "                    rule_first <= cycle;",
        "                    rule_kind <= res_valid ? 2'd2 : 2'd1;",
        "                end",
        "            end",
        "            res_stalled <= res_valid && !res_ready;",
        "            res_held <= res_payload;",
        "            if (engine_error && !error_seen) begin",
        "                error_seen <= 1'b1;",
        "                error_first <= cycle;",
        "            end",
        "            if (busy != busy_last) begin",
        f"                busy_chg[chg_count[{beat_log - 1}:0]] <= cycle;",
        "                chg_count <= chg_count + 1;",
        "            end",
        "            busy_last <= busy;",
        "        end",
        "    end",
    ]
    return lines
