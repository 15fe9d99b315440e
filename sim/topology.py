"""Network layer shapes in SCALE-Sim's topology CSV formats, as the GEMMs an array runs.

Two formats, told apart by their header line (the first line that is not blank or a
``#`` comment), both as written by SCALE-Sim v2 (``scalesim/topology_utils.py``):

* conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,``
* GEMM: ``Layer, M, N, K,`` (SCALE-Sim's ``topologies/GEMM_mnk/*.csv``; note the column
  order M, N, K).

Every data row may end with a comma (SCALE-Sim's files do; its own parser drops the
last field of every row), and everything from a ``#`` to the end of a line is a comment.

Conv -> GEMM. SCALE-Sim applies no padding: the IFMAP size in the file is the size the
filter slides over, and a :class:`Layer` is the "valid" convolution of it:
``out = (ifmap - filter) // stride + 1`` along each axis, the GEMM ``M = out_h * out_w``
(output pixels), ``K = filter_h * filter_w * channels`` (window), ``N = num_filters``.
(SCALE-Sim's own ``topo_calc_hyperparams`` takes ``ceil((ifmap - filter + stride) /
stride)``, one more output, a window hanging over the edge, when ``stride`` does not
divide ``ifmap - filter``; :mod:`sim.scalesim` follows SCALE-Sim there.) A GEMM row
``M, N, K`` is loaded by SCALE-Sim as the conv ``IFMAP M x K, filter 1 x K, 1 channel,
N filters, stride 1``, which is the same GEMM.

Depthwise convs follow SCALE-Sim v2's own convention (``load_arrays_conv``): a conv row
whose layer name contains ``DP`` is depthwise. SCALE-Sim expands it into ``Channels``
separate single-channel layers with ``Num Filter`` filters each (the depth multiplier).
:func:`read_topology` keeps it as one :class:`Layer` with ``depthwise=True`` whose
``m, k, n`` is the GEMM of one channel (``K = filter_h * filter_w``) and which stands for
``repeats = channels`` such GEMMs.
"""

import dataclasses
import os
import pathlib
import re

__all__ = ["Layer", "read_topology", "list_networks", "CONV_HEADER", "GEMM_HEADER"]

CONV_HEADER = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
               "Channels", "Num Filter", "Strides")
GEMM_HEADER = ("Layer", "M", "N", "K")

_DEPTHWISE_MARK = "DP"
_UINT = re.compile(r"[0-9]+")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


def _check_conv(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride):
    for field, value in (("ifmap_h", ifmap_h), ("ifmap_w", ifmap_w), ("filter_h", filter_h),
                         ("filter_w", filter_w), ("channels", channels),
                         ("num_filters", num_filters), ("stride", stride)):
        _check_positive(field, value)
    if filter_h > ifmap_h:
        raise ValueError(f"filter_h must be at most ifmap_h ({ifmap_h}), not {filter_h}")
    if filter_w > ifmap_w:
        raise ValueError(f"filter_w must be at most ifmap_w ({ifmap_w}), not {filter_w}")


def _conv_out(ifmap, filt, stride):
    return (ifmap - filt) // stride + 1


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer as the GEMM ``(m x k) @ (k x n)`` it is, with its conv shape if it has one.

    Parameters
    ----------
    name : str
        Layer name as written in the topology file.
    m, k, n : int
        GEMM shape: ``m`` output pixels (rows of the IFMAP operand), ``k`` the reduction
        (conv window), ``n`` filters (output channels). For a depthwise layer, the GEMM of
        one channel.
    ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride : int or None
        The conv row this layer came from, all ``None`` for a GEMM row. The IFMAP is the
        size the filter slides over (any padding already added).
    depthwise : bool
        A depthwise conv: ``channels`` independent single-channel convs, each with
        ``num_filters`` filters (the depth multiplier).
    count : int
        How many times a GEMM row's ``(m, k, n)`` runs back to back (1; a depthwise
        layer's count is its ``channels``).
    useful_macs : int or None
        The MACs that count, when the GEMM also multiplies zeros (a block-diagonal
        lowering of a depthwise layer); default ``repeats * m * k * n``.

    Raises
    ------
    TypeError, ValueError
        A size that is not a positive integer, a filter larger than the IFMAP, a conv
        shape that does not give ``(m, k, n)``, or ``depthwise`` without a conv shape.
    """

    name: str
    m: int
    k: int
    n: int
    ifmap_h: int | None = None
    ifmap_w: int | None = None
    filter_h: int | None = None
    filter_w: int | None = None
    channels: int | None = None
    num_filters: int | None = None
    stride: int | None = None
    depthwise: bool = False
    count: int = 1
    useful_macs: int | None = None

    _CONV_FIELDS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters",
                    "stride")

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Layer name must be a string, not {self.name!r}")
        for field in ("m", "k", "n", "count"):
            _check_positive(field, getattr(self, field))
        conv = [getattr(self, f) for f in self._CONV_FIELDS]
        if all(v is None for v in conv):
            if self.depthwise:
                raise ValueError(f"Layer {self.name!r} is depthwise, so it needs its conv shape")
        else:
            _check_conv(*conv)
            expected = self._conv_gemm(self.ifmap_h, self.ifmap_w, self.filter_h,
                                       self.filter_w, self.channels, self.num_filters,
                                       self.stride, self.depthwise)
            if (self.m, self.k, self.n) != expected:
                raise ValueError(f"Layer {self.name!r}: (m, k, n) must be {expected} for its "
                                 f"conv shape, not {(self.m, self.k, self.n)}")
        if self.depthwise and self.count != 1:
            raise ValueError(f"Layer {self.name!r} is depthwise, so it runs once per channel; "
                             f"count must be 1, not {self.count}")
        if self.useful_macs is not None:
            _check_positive("useful_macs", self.useful_macs)
            if self.useful_macs > self.repeats * self.m * self.k * self.n:
                raise ValueError(f"Layer {self.name!r}: useful_macs must be at most "
                                 f"repeats x m x k x n, not {self.useful_macs}")

    @staticmethod
    def _conv_gemm(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride,
                   depthwise):
        m = _conv_out(ifmap_h, filter_h, stride) * _conv_out(ifmap_w, filter_w, stride)
        k = filter_h * filter_w * (1 if depthwise else channels)
        return m, k, num_filters

    @classmethod
    def from_conv(cls, name, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters,
                  stride=1, depthwise=False):
        """The layer of a SCALE-Sim conv row (no padding: the IFMAP is the padded size)."""
        _check_conv(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride)
        m, k, n = cls._conv_gemm(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters,
                                 stride, depthwise)
        return cls(name, m, k, n, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters,
                   stride, bool(depthwise))

    @classmethod
    def from_gemm(cls, name, m, k, n, count=1, useful_macs=None):
        """The layer of a GEMM ``(m x k) @ (k x n)``, run ``count`` times."""
        return cls(name, m, k, n, count=count, useful_macs=useful_macs)

    @property
    def is_conv(self):
        """Whether the layer came from a conv row."""
        return self.ifmap_h is not None

    @property
    def out_h(self):
        """Output height of a conv layer (``None`` for a GEMM)."""
        return _conv_out(self.ifmap_h, self.filter_h, self.stride) if self.is_conv else None

    @property
    def out_w(self):
        """Output width of a conv layer (``None`` for a GEMM)."""
        return _conv_out(self.ifmap_w, self.filter_w, self.stride) if self.is_conv else None

    @property
    def repeats(self):
        """How many times the GEMM ``(m, k, n)`` runs: ``channels`` if depthwise, else ``count``."""
        return self.channels if self.depthwise else self.count

    @property
    def macs(self):
        """Multiply-accumulates that count: ``useful_macs``, else ``repeats * m * k * n``."""
        if self.useful_macs is not None:
            return self.useful_macs
        return self.repeats * self.m * self.k * self.n


def _networks_dir():
    # Beside this module, where package-data puts them; a plain path also works when the
    # package is imported as a namespace package (a stale editable install).
    return pathlib.Path(__file__).resolve().parent / "networks"


def list_networks():
    """Names of the bundled networks, sorted: the stems of ``sim/networks/*.csv``."""
    return sorted(p.stem for p in _networks_dir().glob("*.csv"))


def _normalize(text):
    return " ".join(text.split()).lower()


def _fields(line):
    fields = [f.strip() for f in line.split(",")]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def read_topology(path_or_name):
    """Read a SCALE-Sim topology CSV (conv or GEMM form) or a bundled network.

    Parameters
    ----------
    path_or_name : str or os.PathLike
        A path to a CSV file, or the name of a bundled network (see
        :func:`list_networks`: ``resnet50``, ``mobilenet_v1``, ``mobilenet_v2``,
        ``bert_base``).

    Returns
    -------
    list of Layer
        One per data row, in file order.

    Raises
    ------
    ValueError
        A name that is neither a bundled network nor a file, or a malformed file: the
        message names the file, the line number, the field and the bad value.
    """
    if isinstance(path_or_name, str) and path_or_name in list_networks():
        path = _networks_dir() / f"{path_or_name}.csv"
        return _parse(path.read_text(encoding="utf-8"), str(path))
    path = os.fspath(path_or_name)
    if not os.path.exists(path) and os.sep not in path and not path.endswith(".csv"):
        raise ValueError(f"Network must be one of {', '.join(list_networks())} or a path to "
                         f"a CSV file, not {path!r}")
    with open(path, encoding="utf-8") as f:
        return _parse(f.read(), path)


def _parse(text, where):
    header = None
    layers = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        fields = _fields(line)
        if not fields:
            continue
        if header is None:
            header = _header_kind(fields, where, lineno)
            continue
        layers.append(_parse_row(header, fields, where, lineno))
    if header is None:
        raise ValueError(f"{where}: no header line: expected SCALE-Sim's conv header "
                         f"{', '.join(CONV_HEADER)} or GEMM header {', '.join(GEMM_HEADER)}")
    if not layers:
        raise ValueError(f"{where}: no layers after the header")
    return layers


def _header_kind(fields, where, lineno):
    names = [_normalize(f) for f in fields[1:]]
    if names == [_normalize(c) for c in CONV_HEADER[1:]]:
        return "conv"
    if names == [_normalize(c) for c in GEMM_HEADER[1:]]:
        return "gemm"
    raise ValueError(f"{where}:{lineno}: header must be SCALE-Sim's conv header "
                     f"{', '.join(CONV_HEADER)} or GEMM header {', '.join(GEMM_HEADER)}, "
                     f"not {', '.join(fields)}")


def _parse_row(kind, fields, where, lineno):
    columns = CONV_HEADER if kind == "conv" else GEMM_HEADER
    if len(fields) != len(columns):
        raise ValueError(f"{where}:{lineno}: a {kind} row must have {len(columns)} fields "
                         f"({', '.join(columns)}), not {len(fields)}")
    name = fields[0]
    if not name:
        raise ValueError(f"{where}:{lineno}: {columns[0]} must not be empty")
    values = {}
    for column, text in zip(columns[1:], fields[1:], strict=True):
        if not _UINT.fullmatch(text) or int(text) < 1:
            raise ValueError(f"{where}:{lineno}: {column} must be a positive integer, "
                             f"not {text!r}")
        values[column] = int(text)
    if kind == "gemm":
        return Layer.from_gemm(name, values["M"], values["K"], values["N"])
    for filt, ifmap in (("Filter Height", "IFMAP Height"), ("Filter Width", "IFMAP Width")):
        if values[filt] > values[ifmap]:
            raise ValueError(f"{where}:{lineno}: {filt} must be at most {ifmap} "
                             f"({values[ifmap]}), not {values[filt]}")
    return Layer.from_conv(name, *(values[c] for c in CONV_HEADER[1:]),
                           depthwise=_DEPTHWISE_MARK in name)
