"""Processing-element modes as plain-Python strategy objects (no Amaranth): one per mode."""

__all__ = ["BitSerialMode", "MacMode", "PE_MODE_OBJECTS", "PeMode", "XnorMode"]


def _check_int(field, value, lo, hi):
    from .config import _check_int  # hw.config imports this module: import it when called

    _check_int(field, value, lo, hi)


def _int_range(bits, signed):
    """``(lo, hi)`` of a ``bits``-wide two's complement or unsigned integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


class PeMode:
    """What differs between PE modes outside the gateware: the configuration's rules,
    names, the stream codes of the elements, and the cycle model's terms.

    The gateware side of a mode is its PE class in :mod:`hw.pe`; ``ArrayConfig.mode``
    gives this object, so the cycle model reaches it through ``hw.config`` alone.

    Members
    -------
    name : str
        The ``pe_mode`` string.
    default_pack : int
        ``pack`` when none is given.
    default_bits, min_bits, max_bits : int
        Operand widths: the default and the allowed range.
    has_planes : bool
        Whether a command chooses bit planes (``a_planes``, ``w_planes``) and the schedule
        walks them.
    max_k : int
        Largest ``max_k``.
    """

    name = ""
    default_pack = 8
    default_bits = 8
    min_bits, max_bits = 2, 16
    has_planes = False
    max_k = 4096

    def check_pack(self, pack):
        """Raise unless ``pack`` (1..64 already) is allowed in this mode."""
        from .config import PACKS

        if pack not in PACKS:
            raise ValueError(f"ArrayConfig.pack must be a power of two in 1..64 "
                             f"({', '.join(map(str, PACKS))}), not {pack}")

    def check_bits(self, field, value):
        """Raise unless ``value`` is an allowed ``a_bits``/``w_bits`` (``field``)."""
        _check_int(field, value, self.min_bits, self.max_bits)

    def check_signed(self, field, value):
        """Raise unless ``a_signed``/``w_signed`` (``field``, a bool) may be ``value``."""

    def planes(self, config, a_planes=None, w_planes=None):
        """``(a_planes, w_planes)`` of a GEMM: the command's bit planes, checked, or the
        configuration's widths by default (modes without planes: the widths)."""
        return config.a_bits, config.w_bits

    def schedule_planes(self, config, planes):
        """The planes the schedule walks for a GEMM of ``planes``: ``(1, 1)`` unless the
        mode has bit planes."""
        return (1, 1)

    def peak_macs_per_pe(self, config, planes=None):
        """MACs one PE does per cycle."""
        raise NotImplementedError

    def name_part(self, config):
        """The mode's part of ``ArrayConfig.default_name`` (widths, signs, pack)."""
        sign = lambda s: "" if s else "u"  # noqa: E731
        return f"a{sign(config.a_signed)}{config.a_bits}w{sign(config.w_signed)}{config.w_bits}"

    def describe_part(self, config):
        """The mode's part of ``ArrayConfig.describe()``, e.g. ``bitserial x8 a8 w8``."""
        mode = self.name if config.pack == 1 else f"{self.name} x{config.pack}"
        return f"{mode} a{config.a_bits} w{config.w_bits}"

    def element_range(self, config, operand, planes):
        """The integers an ``operand`` ("a" or "w") element may take for ``planes``."""
        if operand == "a":
            return _int_range(planes[0], config.a_signed)
        return _int_range(planes[1], config.w_signed)

    def codes(self, name, matrix, bounds):
        """The elements of operand ``name`` (an int64 array), checked against ``bounds``
        (from :meth:`element_range`), as the integers the stream carries."""
        lo, hi = bounds
        if matrix.size and (matrix.min() < lo or matrix.max() > hi):
            bad = matrix.min() if matrix.min() < lo else matrix.max()
            raise ValueError(f"{name} must hold integers in {lo}..{hi}, not {bad}")
        return matrix


class MacMode(PeMode):
    """Integer multiply-accumulate: one ``(a - a_zp) * w`` per PE per cycle."""

    name = "mac"
    default_pack = 1

    def check_pack(self, pack):
        if pack != 1:
            raise ValueError(f"ArrayConfig.pack must be 1 for pe_mode 'mac', not {pack}")

    def peak_macs_per_pe(self, config, planes=None):
        return 1.0


class XnorMode(PeMode):
    """Binary ±1 operands, ``pack`` per PE word, XNOR-popcount."""

    name = "xnor"
    default_bits = 1
    min_bits = 1
    max_k = 65535

    def check_bits(self, field, value):
        _check_int(field, value, 1, 16)
        if value != 1:
            raise ValueError(f"ArrayConfig.{field} must be 1 for pe_mode 'xnor' (one "
                             f"bit per element), not {value}")

    def check_signed(self, field, value):
        if not value:
            raise ValueError(f"ArrayConfig.{field} must be True for pe_mode 'xnor' "
                             f"(its bits stand for -1 and +1), not False")

    def peak_macs_per_pe(self, config, planes=None):
        return float(config.pack)

    def name_part(self, config):
        return f"xnor_p{config.pack}"

    def describe_part(self, config):
        return self.name if config.pack == 1 else f"{self.name} x{config.pack}"

    def element_range(self, config, operand, planes):
        return -1, 1

    def codes(self, name, matrix, bounds):
        """+1 is carried as bit 1, -1 as bit 0; nothing else is allowed."""
        import numpy as np

        if matrix.size and not np.isin(matrix, (-1, 1)).all():
            bad = matrix[~np.isin(matrix, (-1, 1))].flat[0]
            raise ValueError(f"{name} must hold -1 and +1 only (pe_mode 'xnor'), not {bad}")
        return (matrix > 0).astype(np.int64)


class BitSerialMode(PeMode):
    """One bit plane of activations and of weights per cycle, AND-popcount, planes chosen
    per GEMM."""

    name = "bitserial"
    min_bits = 1
    has_planes = True

    def planes(self, config, a_planes=None, w_planes=None):
        a_planes = config.a_bits if a_planes is None else int(a_planes)
        w_planes = config.w_bits if w_planes is None else int(w_planes)
        for name, value, top in (("a_planes", a_planes, config.a_bits),
                                 ("w_planes", w_planes, config.w_bits)):
            if not 1 <= value <= top:
                raise ValueError(f"{name} must be in 1..{top}, not {value}")
        return a_planes, w_planes

    def schedule_planes(self, config, planes):
        return planes

    def peak_macs_per_pe(self, config, planes=None):
        a_planes, w_planes = planes or (config.a_bits, config.w_bits)
        return config.pack / (a_planes * w_planes)

    def name_part(self, config):
        return f"{super().name_part(config)}_bs_p{config.pack}"


#: The strategy object of each ``pe_mode``.
PE_MODE_OBJECTS = {mode.name: mode for mode in (MacMode(), XnorMode(), BitSerialMode())}
