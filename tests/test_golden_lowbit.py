"""golden's low-bit quantizers and threshold stage against slow per-element Python references.

The references loop over Python floats and ints (``math``, Python's ``round``, which rounds
half to even like ``tf.round``); they are written from the papers, not from golden.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import golden
from golden import INT32_MAX, INT32_MIN

SLOW = settings(max_examples=200, deadline=None)


# --- references ----------------------------------------------------------------------------

def ref_sign(v):
    """BinaryNet's deterministic sign: +1 for v >= 0 (so sign(0) = +1), else -1."""
    return 1 if v >= 0 else -1


def channels(x, axis):
    """The values of each channel along ``axis`` as Python float lists (one list for None)."""
    if axis is None:
        return [np.asarray(x, dtype=np.float64).ravel().tolist()]
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    return [moved[c].ravel().tolist() for c in range(moved.shape[0])]


def ref_mean_abs(values):
    return math.fsum(abs(v) for v in values) / len(values)


def ref_ternarize(values, factor):
    """TWN on one channel: codes and alpha (1.0 when nothing exceeds Delta)."""
    delta = factor * ref_mean_abs(values)
    codes = [1 if v > delta else -1 if v < -delta else 0 for v in values]
    kept = [abs(v) for v in values if abs(v) > delta]
    alpha = math.fsum(kept) / len(kept) if kept else 1.0
    return codes, alpha


def ref_dorefa_weight_codes(values, k):
    """DoReFa weight codes 2q - (2^k - 1), q = round((2^k - 1) r), per element."""
    if k == 1:
        return [ref_sign(v) for v in values]
    levels = 2 ** k - 1
    squashed = [math.tanh(v) for v in values]
    peak = max(abs(t) for t in squashed)
    codes = []
    for t in squashed:
        r = 0.5 if peak == 0 else t / (2 * peak) + 0.5
        codes.append(2 * round(levels * r) - levels)
    return codes


def ref_dorefa_activation(v, k):
    levels = 2 ** k - 1
    return round(levels * min(max(v, 0.0), 1.0))


def ref_bn_bit(x, gamma, beta, mean, var, eps, acc_scale):
    """sign(batchnorm(acc_scale * x)) as a bit, sign(0) = +1, in float64; gamma = 0: sign(beta)."""
    if gamma == 0:
        return 1 if beta >= 0 else 0
    return 1 if gamma * (acc_scale * float(x) - mean) / math.sqrt(var + eps) + beta >= 0 else 0


def ref_threshold(acc, thresholds, invert):
    return [[int((a >= thresholds[n]) != bool(invert[n])) for n, a in enumerate(row)]
            for row in acc]


def signed_dtype(bits):
    return np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32


def sprinkle_zeros(rng, x):
    """``x`` with some entries set to +0.0 and some to -0.0."""
    x = x.copy()
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=max(2, flat.size // 5), replace=False)
    flat[picks[::2]] = 0.0
    flat[picks[1::2]] = -0.0
    return x


def check(exc, pattern, call):
    with pytest.raises(exc, match=pattern):
        call()


# --- binarize --------------------------------------------------------------------------------

def test_binarize_matches_reference(rng):
    x = sprinkle_zeros(rng, rng.normal(size=(6, 11)))
    codes, scale = golden.binarize(x)
    assert codes.dtype == np.int8 and codes.shape == x.shape
    assert codes.ravel().tolist() == [ref_sign(v) for v in x.ravel().tolist()]
    assert scale == 1.0 and isinstance(scale, float)


def test_binarize_sign_of_zero_is_plus_one():
    codes, _ = golden.binarize([0.0, -0.0, 5e-324, -5e-324, 0])
    assert codes.tolist() == [1, 1, 1, -1, 1]


def test_binarize_accepts_integer_arrays():
    codes, _ = golden.binarize(np.array([-2, 0, 3], dtype=np.int16))
    assert codes.tolist() == [-1, 1, 1]


def test_binarize_scaled_per_tensor(rng):
    x = rng.normal(size=(4, 3, 5))
    codes, scale = golden.binarize(x, scaled=True)
    assert isinstance(scale, float)
    assert scale == pytest.approx(ref_mean_abs(x.ravel().tolist()), rel=1e-12)
    expected = [ref_sign(v) * scale for v in x.ravel().tolist()]
    assert (scale * codes).ravel().tolist() == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_binarize_scaled_per_channel(rng, axis):
    x = rng.normal(size=(4, 3, 5)) * rng.uniform(0.1, 10)
    codes, scale = golden.binarize(x, scaled=True, axis=axis)
    slices = channels(x, axis)
    assert scale.dtype == np.float64 and scale.shape == (x.shape[axis],)
    assert scale.tolist() == pytest.approx([ref_mean_abs(c) for c in slices], rel=1e-12)
    # XNOR-Net's real value alpha_c * sign(x), channel by channel, via golden.dequantize.
    real = golden.dequantize(codes, scale, np.zeros(scale.shape, dtype=int), axis=axis)
    expected = [[ref_sign(v) * ref_mean_abs(c) for v in c] for c in slices]
    assert channels(real, axis) == [pytest.approx(e, rel=1e-12) for e in expected]


def test_binarize_scaled_all_zero_channel_has_scale_zero():
    x = np.array([[0.0, 1.0], [-0.0, -3.0]])
    codes, scale = golden.binarize(x, scaled=True, axis=1)
    assert codes.tolist() == [[1, 1], [1, -1]]
    assert scale.tolist() == [0.0, 2.0]
    assert golden.binarize(np.zeros(4), scaled=True)[1] == 0.0


# --- ternarize -------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.0, 0.5, 0.7, 1.3])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_ternarize_matches_reference(rng, factor, axis):
    w = sprinkle_zeros(rng, rng.normal(size=(5, 8)) * rng.uniform(0.01, 3))
    codes, alpha = golden.ternarize(w, factor, axis=axis)
    assert codes.dtype == np.int8 and codes.shape == w.shape
    got_codes = channels(codes, axis)
    slices = channels(w, axis)
    refs = [ref_ternarize(c, factor) for c in slices]
    assert got_codes == [[float(v) for v in r[0]] for r in refs]
    if axis is None:
        assert isinstance(alpha, float)
        assert alpha == pytest.approx(refs[0][1], rel=1e-12)
    else:
        assert alpha.dtype == np.float64 and alpha.shape == (w.shape[axis],)
        assert alpha.tolist() == pytest.approx([r[1] for r in refs], rel=1e-12)


@pytest.mark.parametrize(("w", "factor", "codes", "alpha"), [
    # mean |w| = 1.0 exactly, so Delta = factor exactly: values at +-Delta map to 0.
    ([0.75, -0.75, 1.25, -1.25], 0.75, [0, 0, 1, -1], 1.25),
    ([0.7, -0.7, 1.3, -1.3], 0.7, [0, 0, 1, -1], 1.3),
    ([0.5, -0.5, 1.0, -2.0], 0.5, [0, 0, 1, -1], 1.5),
    # Delta = 0: only the zeros map to 0.
    ([0.0, -0.0, 1e-300, -2.0], 0.0, [0, 0, 1, -1], (1e-300 + 2.0) / 2),
])
def test_ternarize_delta_boundary_maps_to_zero(w, factor, codes, alpha):
    assert ref_ternarize(w, factor) == (codes, alpha)
    got, got_alpha = golden.ternarize(np.array(w), factor)
    assert got.tolist() == codes
    assert got_alpha == alpha


def test_ternarize_default_factor_is_0_7():
    w = np.array([0.7, -0.7, 1.3, -1.3])
    assert golden.ternarize(w)[0].tolist() == [0, 0, 1, -1]


@pytest.mark.parametrize(("w", "factor"), [
    (np.zeros(5), 0.7),
    (np.zeros((2, 3)), 0.0),
    (np.array([2.0, -2.0, 2.0, -2.0]), 1.0),  # Delta = 2: nothing is strictly above it
    (np.array([1.0, -3.0]), 5.0),
])
def test_ternarize_nothing_above_delta_gives_zero_codes_and_alpha_one(w, factor):
    codes, alpha = golden.ternarize(w, factor)
    assert not codes.any()
    assert alpha == 1.0


def test_ternarize_per_channel_alpha_one_only_where_nothing_exceeds_delta():
    w = np.array([[0.0, 1.0], [0.0, -3.0], [0.0, 2.0]])
    codes, alpha = golden.ternarize(w, axis=1)
    assert codes.tolist() == [[0, 0], [0, -1], [0, 1]]
    assert alpha.tolist() == [1.0, 2.5]


def test_ternarize_reconstructs_twn_weights(rng):
    w = rng.normal(size=(3, 4, 5))
    codes, alpha = golden.ternarize(w, axis=0)
    real = golden.dequantize(codes, alpha, np.zeros(alpha.shape, dtype=int), axis=0)
    for c, (values, got) in enumerate(zip(channels(w, 0), channels(real, 0), strict=True)):
        ref_codes, ref_alpha = ref_ternarize(values, 0.7)
        assert got == pytest.approx([ref_alpha * q for q in ref_codes], rel=1e-12), c


# --- DoReFa weights --------------------------------------------------------------------------

@pytest.mark.parametrize("k", range(1, 17))
def test_dorefa_weights_match_reference(rng, k):
    w = sprinkle_zeros(rng, rng.normal(size=(6, 9)) * rng.choice([0.01, 0.5, 1.0, 4.0]))
    codes, scale = golden.dorefa_quantize_weights(w, k)
    assert codes.dtype == signed_dtype(k + 1) and codes.shape == w.shape
    assert codes.ravel().tolist() == ref_dorefa_weight_codes(w.ravel().tolist(), k)
    assert isinstance(scale, float)
    if k == 1:
        assert set(codes.ravel().tolist()) <= {-1, 1}
        assert scale == pytest.approx(ref_mean_abs(w.ravel().tolist()), rel=1e-12)
    else:
        levels = 2 ** k - 1
        assert scale == 1.0 / levels
        assert np.all(codes % 2 == 1)  # odd, negative ones included (Python-style modulo)
        assert codes.min() >= -levels and codes.max() <= levels
        # The largest |tanh(w)| reaches the ends of the range.
        peak = np.argmax(np.abs(w))
        assert abs(int(codes.flat[peak])) == levels


@pytest.mark.parametrize("k", range(2, 17))
def test_dorefa_weights_reconstruct_the_paper_formula(rng, k):
    w = rng.normal(size=(7, 5)) * rng.uniform(0.05, 3)
    levels = 2 ** k - 1
    # tensorpack's fw: tanh, x / max|x| * 0.5 + 0.5, then 2 * round(x * n) / n - 1.
    t = np.tanh(w)
    r = t / np.max(np.abs(t)) * 0.5 + 0.5
    paper = 2 * (np.round(r * levels) / levels) - 1
    codes, scale = golden.dorefa_quantize_weights(w, k)
    np.testing.assert_allclose(scale * codes.astype(np.float64), paper, rtol=0, atol=1e-12)


def test_dorefa_weights_k1_is_sign_times_mean_abs(rng):
    w = sprinkle_zeros(rng, rng.normal(size=(4, 6)))
    codes, scale = golden.dorefa_quantize_weights(w, 1)
    paper = np.where(w >= 0, 1.0, -1.0) * np.mean(np.abs(w))
    np.testing.assert_allclose(scale * codes, paper, rtol=1e-12, atol=0)
    assert codes[w == 0].tolist() == [1] * int(np.sum(w == 0))


@pytest.mark.parametrize("k", range(2, 17))
def test_dorefa_weights_zero_maps_to_plus_one(k):
    levels = 2 ** k - 1
    codes, _ = golden.dorefa_quantize_weights([0.0, -0.0, 3.0, -3.0], k)
    assert codes.tolist() == [1, 1, levels, -levels]


@pytest.mark.parametrize("k", range(1, 17))
def test_dorefa_weights_all_zero(k):
    codes, scale = golden.dorefa_quantize_weights(np.zeros((2, 3)), k)
    assert codes.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert scale == (0.0 if k == 1 else 1.0 / (2 ** k - 1))


def dorefa_k2_tie():
    """A weight ``w`` such that, next to a weight of 20 (tanh = 1), ``3 * r == 2.5`` exactly.

    Searched among the floats next to ``atanh(2/3)``, computing ``r`` as golden does, so the
    test holds whatever the platform's ``tanh`` rounds to.
    """
    assert np.tanh(20.0) == 1.0
    centre = math.atanh(2 / 3)
    for step in range(-2000, 2000):
        w = centre + step * 2.0 ** -53
        r = np.tanh(np.array([20.0, w])) / 2.0 + 0.5
        if 3 * r[1] == 2.5:
            return w
    pytest.fail("no float near atanh(2/3) rounds onto the k=2 tie")


def test_dorefa_weights_round_ties_to_even():
    w = dorefa_k2_tie()
    codes, _ = golden.dorefa_quantize_weights(np.array([20.0, w]), 2)
    # q = rint(2.5) = 2 (half to even; half away from zero would give 3 and code 3).
    assert codes.tolist() == [3, 2 * 2 - 3]


# --- DoReFa activations -----------------------------------------------------------------------

@pytest.mark.parametrize("k", range(1, 17))
def test_dorefa_activations_match_reference(rng, k):
    x = rng.uniform(-0.5, 1.5, size=(5, 13))
    codes, scale = golden.dorefa_quantize_activations(x, k)
    assert codes.dtype == (np.uint8 if k <= 8 else np.uint16) and codes.shape == x.shape
    assert codes.ravel().tolist() == [ref_dorefa_activation(v, k) for v in x.ravel().tolist()]
    assert scale == 1.0 / (2 ** k - 1) and isinstance(scale, float)
    paper = np.round(np.clip(x, 0, 1) * (2 ** k - 1)) / (2 ** k - 1)
    np.testing.assert_allclose(scale * codes, paper, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 8, 9, 16])
def test_dorefa_activations_clip_at_zero_and_one(k):
    levels = 2 ** k - 1
    codes, _ = golden.dorefa_quantize_activations([-1e9, -1.0, -0.0, 0.0, 1.0, 1.5, 1e300], k)
    assert codes.tolist() == [0, 0, 0, 0, levels, levels, levels]


@pytest.mark.parametrize("k", range(1, 9))
def test_dorefa_activations_round_ties_to_even(k):
    levels = 2 ** k - 1
    ties = []
    for j in range(levels):
        x = (j + 0.5) / levels
        if levels * x == j + 0.5:
            ties.append((x, j if j % 2 == 0 else j + 1))
    assert ties, "no exact tie at this k"
    codes, _ = golden.dorefa_quantize_activations([x for x, _ in ties], k)
    assert codes.tolist() == [even for _, even in ties]


def test_dorefa_activations_k1_half_rounds_down():
    assert golden.dorefa_quantize_activations([0.5, 0.5000000000000001], 1)[0].tolist() == [0, 1]


# --- threshold -------------------------------------------------------------------------------

def random_int32(rng, shape):
    x = rng.integers(INT32_MIN, INT32_MAX, size=shape, endpoint=True, dtype=np.int64)
    small = rng.integers(-40, 40, size=shape)
    return np.where(rng.random(shape) < 0.5, small, x)


@pytest.mark.parametrize("invert_as", ["bool", "int", "uint8"])
def test_threshold_matches_reference(rng, invert_as):
    m, n = 9, 7
    acc = random_int32(rng, (m, n))
    acc[0] = INT32_MIN
    acc[1] = INT32_MAX
    thresholds = random_int32(rng, n)
    thresholds[:3] = [INT32_MIN, INT32_MAX, 0]
    acc[2] = thresholds  # ties: acc == T gives (True XOR invert)
    invert = rng.random(n) < 0.5
    flags = {"bool": invert, "int": invert.astype(np.int64),
             "uint8": invert.astype(np.uint8)}[invert_as]
    bits = golden.threshold(acc.astype(np.int32), thresholds.astype(np.int32), flags)
    assert bits.dtype == np.uint8 and bits.shape == (m, n)
    assert bits.tolist() == ref_threshold(acc.tolist(), thresholds.tolist(), invert.tolist())


def test_threshold_other_ranks(rng):
    acc = random_int32(rng, (2, 3, 4))
    thresholds, invert = random_int32(rng, 4), np.array([0, 1, 1, 0])
    bits = golden.threshold(acc, thresholds, invert)
    assert bits.shape == acc.shape
    for i in range(2):
        assert bits[i].tolist() == ref_threshold(acc[i].tolist(), thresholds.tolist(), invert)
    assert golden.threshold(acc[0, 0], thresholds, invert).tolist() == ref_threshold(
        [acc[0, 0].tolist()], thresholds.tolist(), invert)[0]


def test_threshold_int32_min_channels_are_constant():
    acc = np.array([[INT32_MIN, INT32_MIN], [0, 0], [INT32_MAX, INT32_MAX]])
    bits = golden.threshold(acc, np.array([INT32_MIN, INT32_MIN]), np.array([False, True]))
    assert bits.tolist() == [[1, 0], [1, 0], [1, 0]]


# --- batchnorm_thresholds ----------------------------------------------------------------------

def int32_window(centre, half=3):
    lo = max(INT32_MIN, centre - half)
    hi = min(INT32_MAX, centre + half)
    return list(range(lo, hi + 1))


def check_thresholds(params, eps, xs=()):
    """``threshold`` of the computed thresholds equals the float decision, channel by channel.

    ``params`` holds one ``(gamma, beta, mean, var, acc_scale)`` per channel. Each channel is
    checked at ``xs``, the int32 extremes, 0, and every x within 3 of both its real-number
    ``tau`` and its returned threshold.
    """
    gamma, beta, mean, var, acc_scale = (np.array(p, dtype=np.float64) for p in zip(*params,
                                                                                 strict=True))
    thresholds, invert = golden.batchnorm_thresholds(gamma, beta, mean, var, eps, acc_scale)
    assert thresholds.dtype == np.int32 and thresholds.shape == (len(params),)
    assert invert.dtype == np.uint8 and set(invert.tolist()) <= {0, 1}
    probe = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX, *xs}
    for (g, b, mu, v, s), t in zip(params, thresholds.tolist(), strict=True):
        probe.update(int32_window(t))
        if g * s != 0:
            tau = mu / s - b * math.sqrt(v + eps) / (g * s)
            if math.isfinite(tau) and abs(tau) < 2.0 ** 62:
                probe.update(int32_window(math.floor(tau)))
    xs = sorted(probe)
    bits = golden.threshold(np.array(xs, dtype=np.int64)[:, None].repeat(len(params), 1),
                            thresholds, invert)
    for c, (g, b, mu, v, s) in enumerate(params):
        expected = [ref_bn_bit(x, g, b, mu, v, eps, s) for x in xs]
        got = bits[:, c].tolist()
        if got != expected:
            bad = next(i for i in range(len(xs)) if got[i] != expected[i])
            pytest.fail(f"channel {c} {params[c]} eps={eps}: T={thresholds[c]} "
                        f"invert={invert[c]}, x={xs[bad]} gives {got[bad]}, "
                        f"expected {expected[bad]}")
    return thresholds, invert


finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def channel_params(draw):
    """``(gamma, beta, mean, var, acc_scale)`` of one channel, often with a tau that is an
    integer in real arithmetic but rounds off it in float64 (``mean = n * acc_scale``)."""
    gamma = draw(st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0]),
                           st.floats(-100, 100, **finite)))
    var = draw(st.one_of(st.just(0.0), st.floats(0, 1e6, **finite)))
    acc_scale = draw(st.one_of(st.sampled_from([1.0, 0.1, 0.3, 1 / 3, 0.01]),
                               st.floats(1e-6, 1e3, **finite)))
    if draw(st.booleans()):
        return gamma, 0.0, draw(st.integers(-10 ** 6, 10 ** 6)) * acc_scale, var, acc_scale
    beta = draw(st.one_of(st.sampled_from([0.0, -0.0]), st.floats(-1e3, 1e3, **finite)))
    mean = draw(st.one_of(st.integers(-1000, 1000).map(float), st.floats(-1e10, 1e10, **finite)))
    return gamma, beta, mean, var, acc_scale


@SLOW
@given(st.lists(channel_params(), min_size=1, max_size=5),
       st.one_of(st.just(1e-5), st.floats(1e-12, 1.0, **finite)),
       st.lists(st.integers(INT32_MIN, INT32_MAX), min_size=20, max_size=20))
def test_batchnorm_thresholds_equal_the_float_decision(params, eps, xs):
    check_thresholds(params, eps, xs)


def test_batchnorm_thresholds_random_layers(rng):
    n = 64
    params = list(zip(rng.normal(size=n) * rng.choice([1e-3, 1, 1e3], size=n),
                      rng.normal(size=n) * 10, rng.normal(size=n) * 1e3,
                      rng.exponential(10, size=n), rng.uniform(1e-4, 1, size=n), strict=True))
    check_thresholds([tuple(map(float, p)) for p in params], 1e-5,
                     random_int32(rng, 200).tolist())


@pytest.mark.parametrize(("gamma", "thresholds", "invert"), [(1.0, 5, 0), (-1.0, 6, 1)])
def test_batchnorm_thresholds_integer_tau_includes_zero(gamma, thresholds, invert):
    # bn(5) = 0 exactly (or -0.0): sign(0) = +1, so x = 5 gives bit 1 for either sign of gamma.
    got = check_thresholds([(gamma, 0.0, 5.0, 3.0, 1.0)], 1.0)
    assert got[0].tolist() == [thresholds] and got[1].tolist() == [invert]


def test_batchnorm_thresholds_correct_ceil_of_a_rounded_tau():
    # tau = (449 * 0.1) / 0.1 = 449.00000000000006 in float64, whose ceiling is 450, but
    # 0.1 * 449 - 44.900000000000006 == 0.0, so the float decision already holds at 449.
    mean = 449 * 0.1
    assert mean / 0.1 > 449 and 0.1 * 449 - mean >= 0
    thresholds, invert = check_thresholds([(1.0, 0.0, mean, 1.0, 0.1)], 1e-5)
    assert thresholds.tolist() == [449] and invert.tolist() == [0]


def test_batchnorm_thresholds_survive_cancellation(rng):
    # mean / acc_scale and the beta term nearly cancel: the float decision moves in steps of
    # ulp(1e20) there, far from the real-number tau.
    params = []
    for gamma in (1.0, -1.0, 0.37, -2.5):
        std = math.sqrt(4.0 + 1e-5)
        beta = gamma * 1e20 / std + float(rng.normal()) * 1e4
        params.append((gamma, beta, 1e20, 4.0, 1.0))
    check_thresholds(params, 1e-5, random_int32(rng, 50).tolist())


@pytest.mark.parametrize(("params", "thresholds", "invert"), [
    # gamma == 0: sign(beta), with sign(0) = +1 (also for -0.0).
    ((0.0, 1.0, 3.0, 1.0, 1.0), INT32_MIN, 0),
    ((0.0, 0.0, 3.0, 1.0, 1.0), INT32_MIN, 0),
    ((-0.0, -0.0, 3.0, 1.0, 1.0), INT32_MIN, 0),
    ((0.0, -1e-300, 3.0, 1.0, 1.0), INT32_MIN, 1),
    # tau above INT32_MAX: gamma > 0 is never 1, gamma < 0 always 1.
    ((1.0, 0.0, 1e12, 1.0, 1.0), INT32_MIN, 1),
    ((-1.0, 0.0, 1e12, 1.0, 1.0), INT32_MIN, 0),
    # tau below INT32_MIN: gamma > 0 is always 1, gamma < 0 never.
    ((1.0, 0.0, -1e12, 1.0, 1.0), INT32_MIN, 0),
    ((-1.0, 0.0, -1e12, 1.0, 1.0), INT32_MIN, 1),
    # tau exactly at the int32 extremes.
    ((1.0, 0.0, float(INT32_MAX), 0.0, 1.0), INT32_MAX, 0),
    ((1.0, 0.0, float(INT32_MIN), 0.0, 1.0), INT32_MIN, 0),
    ((-1.0, 0.0, float(INT32_MAX), 0.0, 1.0), INT32_MIN, 0),
    ((-1.0, 0.0, float(INT32_MIN), 0.0, 1.0), INT32_MIN + 1, 1),
    ((-1.0, 0.0, float(INT32_MAX - 1), 0.0, 1.0), INT32_MAX, 1),
    # A tiny gamma throws tau to infinity.
    ((5e-324, 1.0, 0.0, 1.0, 1.0), INT32_MIN, 0),
    ((5e-324, -1.0, 0.0, 1.0, 1.0), INT32_MIN, 1),
])
def test_batchnorm_thresholds_constant_and_clamped_channels(params, thresholds, invert):
    got = check_thresholds([params], 1e-300)
    assert got[0].tolist() == [thresholds] and got[1].tolist() == [invert]


def test_batchnorm_thresholds_broadcast_scalars_and_per_channel_acc_scale():
    thresholds, invert = golden.batchnorm_thresholds(
        np.array([1.0, -1.0, 2.0]), 0.0, 10.0, 1.0, eps=1e-5, acc_scale=np.array([1.0, 2.0, 0.5]))
    # tau = mean / acc_scale: 10, 5 and 20.
    assert thresholds.tolist() == [10, 6, 20] and invert.tolist() == [0, 1, 0]


# --- the codes feed the golden GEMMs -----------------------------------------------------------

def test_binarized_codes_through_xnor_popcount(rng):
    m, k, n = 5, 37, 6
    a, _ = golden.binarize(sprinkle_zeros(rng, rng.normal(size=(m, k))))
    w, _ = golden.binarize(rng.normal(size=(k, n)))
    acc = golden.xnor_popcount_gemm(golden.pack_signs(a, axis=1), golden.pack_signs(w, axis=0), k)
    np.testing.assert_array_equal(acc, golden.gemm(a, w))


def test_binarized_layer_with_threshold_output(rng):
    """binarize -> XNOR-popcount -> batchnorm thresholds == sign(bn(acc)), and packs again."""
    m, k, n = 8, 45, 7
    a, _ = golden.binarize(rng.normal(size=(m, k)))
    w, alpha = golden.binarize(rng.normal(size=(k, n)), scaled=True, axis=1)
    acc = golden.xnor_popcount_gemm(golden.pack_signs(a, axis=1), golden.pack_signs(w, axis=0), k)
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    gamma[0] = 0.0
    mean, var = rng.normal(size=n) * 3, rng.exponential(4, size=n)
    thresholds, invert = golden.batchnorm_thresholds(gamma, beta, mean, var, acc_scale=alpha)
    bits = golden.threshold(acc, thresholds, invert)
    expected = [[ref_bn_bit(acc[i, j], gamma[j], beta[j], mean[j], var[j], 1e-5, alpha[j])
                 for j in range(n)] for i in range(m)]
    assert bits.tolist() == expected
    # The output bits are the next layer's binary activations (bit 1 = +1).
    np.testing.assert_array_equal(golden.pack_bits(bits, axis=1),
                                  golden.pack_signs(2 * bits.astype(np.int64) - 1, axis=1))


def test_ternary_codes_through_bitplanes(rng):
    m, k, n = 6, 29, 5
    a = rng.integers(-128, 128, size=(m, k))
    w, _ = golden.ternarize(rng.normal(size=(k, n)), axis=1)
    assert set(np.unique(w).tolist()) == {-1, 0, 1}
    got = golden.bitplane_gemm(a, w, a_bits=8, w_bits=2, a_signed=True, w_signed=True)
    np.testing.assert_array_equal(got, golden.gemm(a, w))


@pytest.mark.parametrize("k", range(1, 9))
def test_dorefa_codes_through_bitplanes(rng, k):
    m, kk, n = 5, 23, 4
    x = rng.uniform(-0.2, 1.2, size=(m, kk))
    a, a_scale = golden.dorefa_quantize_activations(x, k)
    w, w_scale = golden.dorefa_quantize_weights(rng.normal(size=(kk, n)), k)
    acc = golden.bitplane_gemm(a, w, a_bits=k, w_bits=k + 1, a_signed=False, w_signed=True)
    np.testing.assert_array_equal(acc, golden.gemm(a, w))
    # The real product of the quantized operands is a_scale * w_scale * acc.
    real = (a_scale * a.astype(np.float64)) @ (w_scale * w.astype(np.float64))
    np.testing.assert_allclose(a_scale * w_scale * acc, real, rtol=1e-12, atol=1e-12)


# --- bad inputs --------------------------------------------------------------------------------

X = np.zeros((2, 3))
ACC = np.zeros((2, 3), dtype=np.int32)
T3 = np.zeros(3, dtype=np.int32)
INV3 = np.zeros(3, dtype=bool)
G3 = np.ones(3)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^k must be an integer in 1\.\.16, not 0$", lambda: golden.dorefa_quantize_weights(X, 0)),
    (r"^k must be an integer in 1\.\.16, not 17$",
     lambda: golden.dorefa_quantize_weights(X, 17)),
    (r"^k must be an integer in 1\.\.16, not 32$",
     lambda: golden.dorefa_quantize_weights(X, 32)),
    (r"^k must be an integer in 1\.\.16, not 0$",
     lambda: golden.dorefa_quantize_activations(X, 0)),
    (r"^k must be an integer in 1\.\.16, not 17$",
     lambda: golden.dorefa_quantize_activations(X, 17)),
    (r"^x must be finite, not nan$", lambda: golden.binarize([0.0, np.nan])),
    (r"^x must be finite, not inf$", lambda: golden.binarize(np.inf, scaled=True)),
    (r"^w must be finite, not -inf$", lambda: golden.ternarize([1.0, -np.inf])),
    (r"^w must be finite, not nan$", lambda: golden.dorefa_quantize_weights([np.nan], 4)),
    (r"^x must be finite, not inf$", lambda: golden.dorefa_quantize_activations([np.inf], 4)),
    (r"^x must hold at least one element, not shape \(0, 3\)$",
     lambda: golden.binarize(np.zeros((0, 3)), scaled=True)),
    (r"^w must hold at least one element, not shape \(0,\)$", lambda: golden.ternarize([])),
    (r"^w must hold at least one element, not shape \(3, 0\)$",
     lambda: golden.ternarize(np.zeros((3, 0)), axis=0)),
    (r"^w must hold at least one element, not shape \(0,\)$",
     lambda: golden.dorefa_quantize_weights([], 1)),
    (r"^axis must be None when scaled is False, not 0$", lambda: golden.binarize(X, axis=0)),
    (r"^axis must be an integer in -2\.\.1, not 2$",
     lambda: golden.binarize(X, scaled=True, axis=2)),
    (r"^axis must be an integer in -2\.\.1, not -3$", lambda: golden.ternarize(X, axis=-3)),
    (r"^axis must be None for a 0-d w, not 0$", lambda: golden.ternarize(1.0, axis=0)),
    (r"^threshold_factor must be a non-negative finite number, not -0\.1$",
     lambda: golden.ternarize(X, -0.1)),
    (r"^threshold_factor must be a non-negative finite number, not nan$",
     lambda: golden.ternarize(X, float("nan"))),
    (r"^threshold_factor must be a non-negative finite number, not inf$",
     lambda: golden.ternarize(X, float("inf"))),
])
def test_quantizer_bad_values(pattern, call):
    check(ValueError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^k must be an integer, not 2\.0$", lambda: golden.dorefa_quantize_weights(X, 2.0)),
    (r"^k must be an integer, not True$", lambda: golden.dorefa_quantize_activations(X, True)),
    (r"^x must be a real-valued array, not an array of dtype bool$",
     lambda: golden.binarize(np.ones(3, dtype=bool))),
    (r"^w must be a real-valued array, not an array of dtype <U1$",
     lambda: golden.ternarize(["a"])),
    (r"^w must be a real-valued array, not an array of dtype complex128$",
     lambda: golden.dorefa_quantize_weights(np.ones(2, dtype=complex), 2)),
    (r"^x must be a real-valued array, not an array of dtype object$",
     lambda: golden.dorefa_quantize_activations(None, 2)),
    (r"^scaled must be True or False, not 1$", lambda: golden.binarize(X, scaled=1)),
    (r"^axis must be an integer, not 1\.0$", lambda: golden.binarize(X, scaled=True, axis=1.0)),
    (r"^threshold_factor must be a real number, not '0\.7'$",
     lambda: golden.ternarize(X, "0.7")),
    (r"^threshold_factor must be a real number, not True$", lambda: golden.ternarize(X, True)),
])
def test_quantizer_bad_types(pattern, call):
    check(TypeError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^acc must be an integer array, not an array of dtype float64$",
     lambda: golden.threshold(ACC.astype(float), T3, INV3)),
    (r"^acc must be an integer array, not an array of dtype bool$",
     lambda: golden.threshold(ACC.astype(bool), T3, INV3)),
    (r"^thresholds must be an integer array, not an array of dtype float32$",
     lambda: golden.threshold(ACC, T3.astype(np.float32), INV3)),
    (r"^invert must be a bool or 0/1 integer array, not an array of dtype float64$",
     lambda: golden.threshold(ACC, T3, INV3.astype(float))),
])
def test_threshold_needs_integers(pattern, call):
    check(TypeError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^acc must hold integers in -2147483648\.\.2147483647, not 2147483648$",
     lambda: golden.threshold(np.array([[0, 0, 1 << 31]]), T3, INV3)),
    (r"^thresholds must hold integers in -2147483648\.\.2147483647, not -2147483649$",
     lambda: golden.threshold(ACC, np.array([0, -(1 << 31) - 1, 0]), INV3)),
    (r"^acc must have at least 1 dimension, not shape \(\)$",
     lambda: golden.threshold(np.int32(3), T3, INV3)),
    (r"^thresholds must have one entry per column \(3\), not shape \(2,\)$",
     lambda: golden.threshold(ACC, T3[:2], INV3)),
    (r"^thresholds must have 1 dimensions, not shape \(1, 3\)$",
     lambda: golden.threshold(ACC, T3[None], INV3)),
    (r"^thresholds must have 1 dimensions, not shape \(\)$",
     lambda: golden.threshold(ACC, 0, INV3)),
    (r"^invert must have one entry per column \(3\), not shape \(4,\)$",
     lambda: golden.threshold(ACC, T3, np.zeros(4, dtype=bool))),
    (r"^invert must have one entry per column \(3\), not shape \(\)$",
     lambda: golden.threshold(ACC, T3, True)),
    (r"^invert must hold only 0 and 1, not 2$",
     lambda: golden.threshold(ACC, T3, np.array([0, 2, 1]))),
    (r"^invert must hold only 0 and 1, not -1$",
     lambda: golden.threshold(ACC, T3, np.array([-1, 0, 1]))),
])
def test_threshold_bad_values(pattern, call):
    check(ValueError, pattern, call)


def bn(**changes):
    args = dict(gamma=G3, beta=0.0, mean=0.0, var=1.0, eps=1e-5, acc_scale=1.0)
    args.update(changes)
    return lambda: golden.batchnorm_thresholds(**args)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^eps must be positive and finite, not 0\.0$", bn(eps=0.0)),
    (r"^eps must be positive and finite, not -1e-05$", bn(eps=-1e-5)),
    (r"^eps must be positive and finite, not nan$", bn(eps=float("nan"))),
    (r"^acc_scale must be positive and finite, not 0\.0$", bn(acc_scale=0.0)),
    (r"^acc_scale must be positive and finite, not -0\.5$",
     bn(acc_scale=np.array([1.0, -0.5, 2.0]))),
    (r"^acc_scale must be positive and finite, not inf$", bn(acc_scale=float("inf"))),
    (r"^var must be non-negative, not -1\.0$", bn(var=np.array([1.0, -1.0, 0.0]))),
    (r"^var must be non-negative, not -1e-300$", bn(var=-1e-300)),
    (r"^var \+ eps must be finite, not inf$", bn(var=1.7e308, eps=1e308)),
    (r"^var must be finite, not inf$", bn(var=float("inf"))),
    (r"^gamma must be finite, not nan$", bn(gamma=np.array([1.0, np.nan, 1.0]))),
    (r"^beta must be finite, not -inf$", bn(beta=-np.inf)),
    (r"^mean must be finite, not nan$", bn(mean=np.array([0.0, 0.0, np.nan]))),
    (r"^gamma must have 1 dimensions, not shape \(\)$", bn(gamma=1.0)),
    (r"^gamma must have 1 dimensions, not shape \(1, 3\)$", bn(gamma=G3[None])),
    (r"^beta must be a scalar or have one entry per channel \(3\), not shape \(2,\)$",
     bn(beta=np.zeros(2))),
    (r"^mean must be a scalar or have one entry per channel \(3\), not shape \(3, 1\)$",
     bn(mean=np.zeros((3, 1)))),
    (r"^var must be a scalar or have one entry per channel \(3\), not shape \(4,\)$",
     bn(var=np.ones(4))),
    (r"^eps must be a scalar or have one entry per channel \(3\), not shape \(2,\)$",
     bn(eps=np.full(2, 1e-5))),
    (r"^acc_scale must be a scalar or have one entry per channel \(3\), not shape \(1,\)$",
     bn(acc_scale=np.ones(1))),
])
def test_batchnorm_thresholds_bad_values(pattern, call):
    check(ValueError, pattern, call)


@pytest.mark.parametrize(("pattern", "call"), [
    (r"^gamma must be a real-valued array, not an array of dtype bool$",
     bn(gamma=np.ones(3, dtype=bool))),
    (r"^beta must be a real-valued array, not an array of dtype <U1$", bn(beta="0")),
    (r"^eps must be a real number or array of them, not 'a'$", bn(eps="a")),
    (r"^acc_scale must be a real number or array of them, not None$", bn(acc_scale=None)),
])
def test_batchnorm_thresholds_bad_types(pattern, call):
    check(TypeError, pattern, call)
