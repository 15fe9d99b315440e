"""nets.quantizer and the methods' quantizers against golden and slow, obvious references."""

import math
from fractions import Fraction

import numpy as np
import pytest

import golden
from nets.export import ActQuant, PlanLayer
from nets.graph import Quant
from nets.quantizer import Quantizer, quantize_bias

jnp = pytest.importorskip("jax.numpy")


def _ranges(rng, n=None):
    shape = () if n is None else (n,)
    lo = -rng.exponential(2.0, shape) * (rng.random(shape) < 0.8)
    hi = rng.exponential(2.0, shape) * (rng.random(shape) < 0.8)
    return lo, hi


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_export_is_golden_choose_qparams(rng, bits, symmetric):
    q = Quantizer(bits=bits, symmetric=symmetric, narrow_range=symmetric)
    for _ in range(50):
        lo, hi = _ranges(rng)
        scale, zp = q.export(lo, hi)
        ref_scale, ref_zp = golden.choose_qparams(float(lo), float(hi), bits, True, symmetric,
                                                  symmetric)
        assert scale[0] == np.float32(ref_scale) and zp[0] == ref_zp
        # The numpy formula that training evaluates in jax.numpy gives the same numbers.
        s2, z2 = q.qparams(lo, hi)
        assert s2 == scale[0] and z2 == zp[0]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_jax_qparams_and_codes_match_numpy(rng, bits):
    q = Quantizer(bits=bits)
    lo, hi = _ranges(rng, 16)
    s_np, z_np = q.qparams(lo, hi)
    s_jx, z_jx = q.qparams(jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32), xp=jnp)
    # float32 arithmetic in JAX may move the scale by an ulp; the zero point must agree.
    np.testing.assert_allclose(np.asarray(s_jx), s_np, rtol=1e-6)
    assert np.array_equal(np.asarray(z_jx), z_np)
    x = (rng.normal(size=(64, 16)) * 3).astype(np.float32)
    codes_np = q.codes(x, s_np, z_np)
    codes_jx = np.asarray(q.codes(jnp.asarray(x), jnp.asarray(s_np), jnp.asarray(z_np), jnp))
    assert np.array_equal(codes_np, codes_jx)
    for c in range(16):
        ref = golden.quantize(x[:, c], s_np[c], int(z_np[c]), bits, True)
        assert np.array_equal(codes_np[:, c].astype(np.int64), ref.astype(np.int64))


def test_ties_round_half_away_from_zero():
    q = Quantizer(bits=8, symmetric=True, narrow_range=True)
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.5, 126.5, 127.5, -127.5], np.float32)
    assert q.codes(x, 1.0, 0).tolist() == [1, -1, 2, -2, 3, 127, 127, -127]
    assert np.asarray(q.codes(jnp.asarray(x), 1.0, 0, jnp)).tolist() == [
        1, -1, 2, -2, 3, 127, 127, -127]


def test_observe_per_channel_minmax_and_percentile(rng):
    x = rng.normal(size=(5, 3, 3, 7)) * rng.uniform(0.1, 4, 7)
    lo, hi = Quantizer(granularity="channel", axis=3).observe(x)
    for c in range(7):
        assert lo[c] == x[..., c].min() and hi[c] == x[..., c].max()
    lo, hi = Quantizer(granularity="channel", axis=0, calibration="percentile",
                       percentile=90.0).observe(x)
    for c in range(5):
        assert lo[c] == pytest.approx(np.percentile(x[c], 10.0))
        assert hi[c] == pytest.approx(np.percentile(x[c], 90.0))


def test_mse_calibration_picks_the_best_clipping(rng):
    # A slow reference: every candidate ratio, its fake quantization, its error, by loops.
    x = np.abs(rng.standard_t(3, size=400))
    q = Quantizer(bits=3, calibration="mse")
    lo, hi = q.observe(x)
    ratios = np.linspace(0.05, 1.0, 96)
    errors = []
    for r in ratios:
        scale, zp = golden.choose_qparams(0.0, float(x.max()) * r, 3, True)
        fq = [scale * (max(-4, min(3, golden.round_half_away(v / np.float32(scale)) + zp)) - zp)
              for v in x]
        errors.append(sum((a - b) ** 2 for a, b in zip(fq, x, strict=True)))
    best = ratios[int(np.argmin(errors))]
    assert hi == pytest.approx(x.max() * best)
    assert lo == 0.0


def test_quantize_bias_is_exact_rounding(rng):
    for _ in range(200):
        s_x, s_w = np.float32(rng.uniform(1e-3, 1)), np.float32(rng.uniform(1e-4, 1))
        b = float(rng.normal() * 10)
        got = int(quantize_bias(np.array([b]), s_x, np.array([s_w]))[0])
        exact = abs(Fraction(b) / (Fraction(float(s_x)) * Fraction(float(s_w))))
        want = int(math.copysign(math.floor(exact + Fraction(1, 2)), b))
        # The float64 quotient rounds once; only a value within 1e-9 of a tie may go either way.
        if abs(exact - math.floor(exact) - Fraction(1, 2)) > Fraction(1, 10 ** 9):
            assert got == want


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match=r"^Quantizer\.granularity must be one of tensor, "
                                         r"channel, not 'row'$"):
        Quantizer(granularity="row")
    with pytest.raises(ValueError, match=r"^Quantizer\.calibration must be one of minmax, "
                                         r"percentile, mse, not 'kl'$"):
        Quantizer(calibration="kl")
    with pytest.raises(ValueError, match=r"^a symmetric Quantizer needs signed codes of at "
                                         r"least 2 bits, not bits=4, signed=False$"):
        Quantizer(bits=4, signed=False, symmetric=True)
    with pytest.raises(ValueError, match=r"^Quantizer\.percentile must be in \(50, 100\], "
                                         r"not 20$"):
        Quantizer(calibration="percentile", percentile=20)
    with pytest.raises(ValueError, match=r"^Quant\.bits must be None or an integer in 1\.\.16,"
                                         r" not 0$"):
        Quant(1.0, 0, bits=0)
    with pytest.raises(ValueError, match=r"^a PlanLayer needs either a bias \(requantizing\) or "
                                         r"thresholds, not both or neither$"):
        PlanLayer(None, "mac", np.zeros((1, 1), np.int8), np.ones(1, np.float32), 8,
                  ActQuant(1.0, 0, 8))


# -- the methods' own quantizers --

def test_twn_ternary_in_jax_is_golden_ternarize(rng):
    from nets.lowbit_methods import _ternary
    for _ in range(20):
        w = rng.normal(size=(16, 9)).astype(np.float32)
        codes, alpha = _ternary(jnp.asarray(w))
        ref_codes, ref_alpha = golden.ternarize(w.astype(np.float64))
        assert np.array_equal(np.asarray(codes), ref_codes)
        assert float(alpha) == pytest.approx(ref_alpha, rel=1e-6)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_dorefa_weights_in_jax_are_golden_codes(rng, k):
    from nets.arch import NETS
    from nets.lowbit_methods import DoReFaScheme
    scheme = DoReFaScheme(NETS["mlp"], k, 4)
    w = rng.normal(size=(32, 16)).astype(np.float64)
    got = np.asarray(scheme.weight(0, None, jnp.asarray(w, jnp.float32), {}), np.float64)
    codes, scale = golden.dorefa_quantize_weights(w, k)
    # float32 tanh may land a value across a rounding boundary; all others must agree.
    same = np.isclose(got, codes * scale, atol=1e-6)
    assert same.mean() > 0.99


def test_inq_levels_and_quantization_against_the_paper():
    from nets.lowbit_methods import inq_levels, inq_quantize
    w = np.array([0.9, -0.6, 0.3, 0.01, -0.2, 0.0049, 0.0])
    levels, n1, n2 = inq_levels(w, 5)
    # s = 0.9: n1 = floor(log2(1.2)) = 0, n2 = 0 + 1 - 8 = -7.
    assert (n1, n2) == (0, -7)
    assert levels.tolist() == [0.0] + [2.0 ** n for n in range(-7, 1)]
    got = inq_quantize(w, levels)
    # Slow reference: beta where (alpha + beta) / 2 <= |w| < 3 beta / 2 (alpha the level below).
    want = []
    for v in w:
        chosen = 0.0
        for lower, upper in zip(levels[:-1], levels[1:], strict=True):
            if (lower + upper) / 2 <= abs(v) < 3 * upper / 2:
                chosen = upper
        want.append(math.copysign(chosen, v) if chosen else 0.0)
    assert got.tolist() == want


def test_elq_ternary_is_a_fixed_point_of_its_alternation(rng):
    from nets.lowbit_methods import elq_ternary
    w = rng.normal(size=500)
    d = rng.uniform(0.1, 2.0, 500)
    codes, alpha = elq_ternary(w, d, iterations=50)
    nz = codes != 0
    assert alpha == pytest.approx(np.sum(d[nz] * np.abs(w[nz])) / np.sum(d[nz]))
    assert np.array_equal(codes, np.where(np.abs(w) > alpha / 2, np.sign(w), 0))
