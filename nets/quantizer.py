"""One quantizer object per scheme: calibration, scale and zero point, codes, fake quantization.

A :class:`Quantizer` holds the knobs of one uniform affine scheme (bits, signed, symmetric,
narrow range, per tensor or per channel, how a range is calibrated). The same object
computes the integer scale and zero point that an exported graph stores
(:meth:`Quantizer.export`) and the fake quantization that training and fake-quant
evaluation apply (:meth:`Quantizer.fake`), so the two cannot disagree (Brevitas's habit).

Every formula is written once over an array namespace ``xp``: ``numpy`` for calibration
and export, ``jax.numpy`` inside training. This module imports numpy only.

Rules (DESIGN.md section 2, TFLite's):

* ``real = scale * (q - zero_point)``; ``q = clamp(round_half_away(x / scale) + zp,
  qmin, qmax)``, the division in ``x``'s float type (float32), as :func:`golden.quantize`.
* Asymmetric: gemmlowp's ``ChooseQuantizationParams`` (:func:`golden.choose_qparams`):
  the range widened to contain 0, ``scale = (hi - lo) / (qmax - qmin)``, the zero point
  nudged from the end with the smaller rounding error. Symmetric: zero point 0 and
  ``scale = max(|lo|, |hi|) / qmax``.
* Exported scales are float32 (as a ``.tflite`` stores them); the fake quantization used to
  evaluate a finished model takes those same float32 scales.
"""

from dataclasses import dataclass

import numpy as np

import golden

__all__ = ["CALIBRATIONS", "GRANULARITIES", "Quantizer", "quantize_bias", "round_half_away_xp"]

CALIBRATIONS = ("minmax", "percentile", "mse")
GRANULARITIES = ("tensor", "channel")
# Clipping ratios that the MSE calibration tries (fractions of the min/max range).
_MSE_RATIOS = np.linspace(0.05, 1.0, 96)


def round_half_away_xp(x, xp=np):
    """Round half away from zero (C's ``round``) in namespace ``xp``; ``golden``'s formula."""
    whole = xp.trunc(x)
    return whole + xp.where(xp.abs(x - whole) >= 0.5, xp.sign(x), 0).astype(x.dtype)


def quantize_bias(bias, x_scale, w_scale):
    """int32 bias codes at scale ``x_scale * w_scale[c]`` (zero point 0), TFLite's rule.

    ``round_half_away(bias / (float64(x_scale) * float64(w_scale)))``, refused when a code
    leaves int32.
    """
    acc_scale = np.float64(np.float32(x_scale)) * np.asarray(w_scale, np.float32).astype(
        np.float64)
    codes = golden.round_half_away(np.asarray(bias, np.float64) / acc_scale)
    if np.any(np.abs(codes) > golden.INT32_MAX):
        raise ValueError(f"bias {float(np.max(np.abs(bias)))} does not fit int32 at scale "
                         f"{float(np.min(acc_scale))}")
    return codes.astype(np.int32)


@dataclass(frozen=True)
class Quantizer:
    """A uniform affine quantization scheme.

    Parameters
    ----------
    bits : int, 1..16
        Code width.
    signed : bool
        Signed (two's complement) or unsigned codes.
    symmetric : bool
        Zero point 0 and a range symmetric about 0 (weights); else asymmetric.
    narrow_range : bool
        Drop the most negative code (TFLite's int8 weights use -127..127).
    granularity : "tensor" or "channel"
        One scale per tensor or one per channel along ``axis``.
    axis : int
        The channel axis (of the arrays passed to :meth:`observe`) when per channel.
    calibration : "minmax", "percentile" or "mse"
        How :meth:`observe` turns values into a range: their extremes; the
        ``percentile``-th and ``(100 - percentile)``-th percentiles; or the clipping of the
        min/max range (96 ratios from 0.05 to 1) whose fake quantization has the least
        mean squared error.
    percentile : float
        For ``calibration="percentile"``, in (50, 100].
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = False
    narrow_range: bool = False
    granularity: str = "tensor"
    axis: int = -1
    calibration: str = "minmax"
    percentile: float = 99.99

    def __post_init__(self):
        golden.qrange(self.bits, self.signed, self.narrow_range)  # validates bits
        if self.qmax <= self.qmin:
            raise ValueError(f"Quantizer.bits must leave two codes, not {self.bits} with "
                             f"narrow_range={self.narrow_range}")
        if self.symmetric and (not self.signed or self.qmax < 1):
            raise ValueError(f"a symmetric Quantizer needs signed codes of at least 2 bits, "
                             f"not bits={self.bits}, signed={self.signed}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"Quantizer.granularity must be one of {', '.join(GRANULARITIES)},"
                             f" not {self.granularity!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"Quantizer.calibration must be one of {', '.join(CALIBRATIONS)},"
                             f" not {self.calibration!r}")
        if not 50.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"Quantizer.percentile must be in (50, 100], not "
                             f"{self.percentile!r}")

    @property
    def qmin(self):
        """Smallest code."""
        return golden.qrange(self.bits, self.signed, self.narrow_range)[0]

    @property
    def qmax(self):
        """Largest code."""
        return golden.qrange(self.bits, self.signed, self.narrow_range)[1]

    @property
    def per_channel(self):
        """True for one scale per channel."""
        return self.granularity == "channel"

    def replace(self, **changes):
        """A copy with some knobs changed."""
        return type(self)(**{**self.__dict__, **changes})

    # -- calibration (numpy) --

    def _reduce_axes(self, x):
        if not self.per_channel:
            return None
        axis = self.axis % x.ndim
        return tuple(i for i in range(x.ndim) if i != axis)

    def observe(self, x):
        """Calibrated range ``(lo, hi)`` of ``x``: float64 scalars, or arrays per channel."""
        x = np.asarray(x, np.float64)
        axes = self._reduce_axes(x)
        if self.calibration == "percentile":
            lo = np.percentile(x, 100.0 - self.percentile, axis=axes)
            hi = np.percentile(x, self.percentile, axis=axes)
        else:
            lo, hi = np.min(x, axis=axes), np.max(x, axis=axes)
        if self.calibration == "mse":
            lo, hi = self._mse_range(x, lo, hi, axes)
        return _scalar_or(lo), _scalar_or(hi)

    def _mse_range(self, x, lo, hi, axes):
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
        best, best_err = None, None
        for r in _MSE_RATIOS:
            scale, zp = self.qparams(lo * r, hi * r, np.float64)
            shape = self.channel_shape(x.ndim)
            fq = self.fake(x, np.reshape(scale, shape), np.reshape(zp, shape))
            err = np.mean((fq - x) ** 2, axis=axes)
            if best is None:
                best, best_err = np.full(np.shape(err), r), err
            else:
                better = err < best_err
                best, best_err = np.where(better, r, best), np.where(better, err, best_err)
        return lo * best, hi * best

    # -- scale and zero point --

    def qparams(self, lo, hi, dtype=np.float32, xp=np):
        """``(scale, zero_point)`` of the range ``[lo, hi]``: golden's rule in ``xp``.

        With ``xp=numpy`` the result equals :func:`golden.choose_qparams` (computed in float64,
        the scale then rounded to ``dtype``). The zero point is a float holding an integer.
        """
        lo = xp.minimum(xp.asarray(lo, dtype=xp.float64 if xp is np else None), 0.0)
        hi = xp.maximum(xp.asarray(hi, dtype=xp.float64 if xp is np else None), 0.0)
        point = hi == lo
        if self.symmetric:
            scale = xp.maximum(xp.abs(lo), xp.abs(hi)) / self.qmax
            zp = xp.zeros_like(scale)
        else:
            qmin, qmax = float(self.qmin), float(self.qmax)
            scale = (hi - lo) / (qmax - qmin)
            safe = xp.where(point, 1.0, scale)
            from_min, from_max = qmin - lo / safe, qmax - hi / safe
            err_min = abs(qmin) + xp.abs(lo / safe)
            err_max = abs(qmax) + xp.abs(hi / safe)
            zp = xp.where(err_min < err_max, from_min, from_max)
            zp = xp.where(point, 0.0, zp)
            zp = xp.clip(round_half_away_xp(xp.clip(zp, qmin, qmax), xp), qmin, qmax)
        scale = xp.where(point, 1.0, scale)
        return scale.astype(dtype), zp

    def export(self, lo, hi):
        """The stored form: float32 scales and int64 zero points, 1-D (one per channel).

        Exactly :func:`golden.choose_qparams` on ``[lo, hi]`` with this scheme's knobs, the
        scale then rounded to float32.
        """
        scale, zp = golden.choose_qparams(np.asarray(lo, np.float64), np.asarray(hi, np.float64),
                                          self.bits, self.signed, self.symmetric,
                                          self.narrow_range)
        return (np.atleast_1d(np.asarray(scale, np.float32)),
                np.atleast_1d(np.asarray(zp, np.int64)))

    # -- codes and fake quantization --

    def codes(self, x, scale, zero_point, xp=np):
        """``clamp(round_half_away(x / scale) + zero_point, qmin, qmax)`` as floats in ``xp``.

        ``scale`` and ``zero_point`` broadcast against ``x``; the division is in ``x``'s
        float type, as :func:`golden.quantize`.
        """
        x = xp.asarray(x)
        q = round_half_away_xp(x / xp.asarray(scale, x.dtype), xp) + xp.asarray(zero_point,
                                                                                x.dtype)
        return xp.clip(q, self.qmin, self.qmax)

    def fake(self, x, scale, zero_point, xp=np):
        """Fake quantization ``scale * (codes - zero_point)`` (no gradient rule)."""
        x = xp.asarray(x)
        zp = xp.asarray(zero_point, x.dtype)
        return xp.asarray(scale, x.dtype) * (self.codes(x, scale, zero_point, xp) - zp)

    def integer(self, x, scale, zero_point):
        """Codes of ``x`` as the smallest integer dtype holding them (numpy, for export)."""
        codes = self.codes(np.asarray(x, np.float32), scale, zero_point)
        dtype = golden.quantize(np.zeros(1, np.float32), 1.0, 0, self.bits, self.signed).dtype
        return codes.astype(dtype)

    def channel_shape(self, ndim):
        """Shape that broadcasts one entry per channel against an ``ndim``-d array."""
        if not self.per_channel:
            return ()
        shape = [1] * ndim
        shape[self.axis % ndim] = -1
        return tuple(shape)

    def describe(self):
        """A short text, e.g. ``int4 asym per-tensor minmax``."""
        kind = ("int" if self.signed else "uint") + str(self.bits)
        sym = "sym" if self.symmetric else "asym"
        gran = "per-channel" if self.per_channel else "per-tensor"
        return f"{kind} {sym} {gran} {self.calibration}"


def _scalar_or(value):
    value = np.asarray(value, np.float64)
    return float(value) if value.ndim == 0 else value

