"""The low-bit papers' methods: BinaryNet, TWN, DoReFa, INQ, SYQ, ELQ, TSQ, CLIP-Q, Sun et al.

Each function trains with its paper's recipe (stated in its docstring) and returns a
:class:`nets.methods.Result` whose plan runs on the PE mode the method needs: binary
layers on ``xnor`` with thresholds folded from batch norm, k-bit and ternary layers on
``bitserial``, power-of-two and pruned weights on ``mac``. Deviations forced by the
hardware (or by this small data set) are stated where they are made.

Shared deployment rules:

* Networks whose first layer runs on ``bitserial`` take the input as unsigned 8-bit codes
  with zero point 0 (``pixel * 255``; the bit-serial PEs have no activation zero point).
* A layer's weights are integer codes times a per-tensor or per-channel scale ``alpha``;
  the batch norm that follows is folded into the requantizer (``s_w[c] = |alpha_c g_c|``
  with ``g = gamma / sqrt(var + eps)``, codes negated where ``g_c < 0``, bias
  ``beta - g mean``), or into thresholds for binary outputs
  (:func:`golden.batchnorm_thresholds`), never into the codes, which keep their few bits.
* Hidden activations of bit-serial layers are unsigned ``a_bits`` codes over ``[0, hi]``
  (zero point 0), ``hi`` an EMA of the batch maximum (as QAT); the logits are 8 bits.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import golden

from .export import ActQuant, Plan, PlanLayer
from .methods import (
    LOGIT_QUANTIZER,
    PlanScheme,
    Result,
    clipped_ste,
    float_activations,
    fold_numpy,
    input_act,
    make_plan,
    ste,
    weight_quantizer,
)
from .quantizer import Quantizer, quantize_bias
from .train import BN_EPS, Scheme, accuracy, batchnorm, cross_entropy, fit, forward, init, linear

__all__ = ["UNSIGNED_INPUT", "BinaryScheme", "ClipQScheme", "DoReFaScheme", "FeatureQuantScheme",
           "LowBitScheme", "SYQScheme", "TSQScheme", "TWNScheme", "affine_layer", "binarynet",
           "clipq", "clipq_weights", "dorefa", "elq", "elq_ternary", "feature_quantization",
           "fgsm", "inq", "inq_levels", "inq_quantize", "syq", "tsq", "twn"]

#: Input of bit-serial networks: unsigned 8-bit codes, zero point 0, scale 1/255.
UNSIGNED_INPUT = Quantizer(bits=8, signed=False)
_EMA = 0.99


def _check_net(net, method):
    if any(layer.kind == "depthwise" for layer in net.layers):
        raise ValueError(f"method {method!r} runs the mlp and cnn networks (its PE mode has no "
                         f"depthwise layer), not {net.name!r}")


def _ema(ctx, key, y):
    lo, hi = ctx["qstate"][key]
    if ctx["train"]:
        lo = _EMA * lo + (1 - _EMA) * jax.lax.stop_gradient(jnp.min(y))
        hi = _EMA * hi + (1 - _EMA) * jax.lax.stop_gradient(jnp.max(y))
    ctx["new_qstate"][key] = (lo, hi)
    return lo, hi


class LowBitScheme(Scheme):
    """A network with method-specific weights and ``a_bits`` activations (EMA ranges).

    Subclasses define :meth:`weight`. ``signed_acts`` chooses signed asymmetric
    activations (mac engines) or unsigned ones with zero point 0 (bit-serial engines).
    """

    def __init__(self, net, a_bits, *, signed_acts=False, input_quantizer=UNSIGNED_INPUT):
        self.net = net
        self.in_q = input_quantizer
        last = len(net.layers) - 1
        self.a_qs = [LOGIT_QUANTIZER if i == last else Quantizer(bits=a_bits,
                                                                 signed=signed_acts)
                     for i in range(len(net.layers))]

    def input(self, x, ctx):
        scale, zp = self.in_q.qparams(0.0, 1.0, xp=jnp)
        return self.in_q.fake(x, scale, zp, jnp)

    def pre_activation(self, i, layer, y, ctx):
        """Hook before the ReLU (TSQ subtracts its threshold here)."""
        return y

    def activation(self, i, layer, y, ctx):
        y = self.pre_activation(i, layer, y, ctx)
        y = jax.nn.relu(y) if layer.relu else y
        lo, hi = _ema(ctx, f"range{i}", y)
        q = self.a_qs[i]
        scale, zp = q.qparams(lo, hi, xp=jnp)
        return clipped_ste(q, y, scale, zp)


def _ranges(net, params, state, x_cal):
    """Starting EMA ranges: min/max of each layer's float output on ``x_cal``."""
    acts = float_activations(net, params, state, x_cal)
    return {f"range{i}": (jnp.float32(a.min()), jnp.float32(a.max()))
            for i, a in enumerate(acts)}


def _train(net, scheme, params, state, qstate, x, y, *, seed, epochs, lr, after_step=None,
           on_epoch=None, loss_fn=cross_entropy, extra=None):
    """Fit ``(params, extra)`` under ``scheme``; BN and ranges are the frozen part."""

    def loss(tr, fr, xb, yb, k):
        logits, st, qs = forward(net, tr[0], fr[0], xb, scheme=scheme, train=True,
                                 qstate={**fr[1], "extra": tr[1]})
        qs.pop("extra")
        return loss_fn(logits, yb), (st, qs)

    (params, extra), (state, qstate) = fit(
        loss, (params, extra or {}), (state, qstate), x, y, key=jax.random.PRNGKey(seed),
        epochs=epochs, optimizer=optax.adam(lr), after_step=after_step, on_epoch=on_epoch)
    return params, extra, state, qstate


def _eval(net, params, state, qstate, extra, scheme, x_test, y_test):
    if x_test is None:
        return np.nan
    return accuracy(net, params, state, x_test, y_test, scheme, {**qstate, "extra": extra})


def _act(q, lo_hi):
    scale, zp = q.export(*lo_hi)
    return ActQuant(float(scale[0]), int(zp[0]), q.bits, q.signed)


def _bn_affine(layer, p, s):
    """``(g, shift)`` with ``bn(z) = g * z + shift`` per channel (1 and the bias without BN)."""
    if not layer.bn:
        return np.ones(np.shape(p["b"])), np.asarray(p["b"], np.float64)
    g = np.asarray(p["gamma"], np.float64) / np.sqrt(np.asarray(s["var"], np.float64) + BN_EPS)
    return g, np.asarray(p["beta"], np.float64) - g * np.asarray(s["mean"], np.float64)


def affine_layer(layer, mode, codes, alpha, p, s, s_x, out, *, w_bits, a_bits=8,
                 bias_shift=0.0):
    """A requantizing :class:`PlanLayer` of ``bn(alpha * codes . x) + bias_shift``.

    The per-channel affine map of batch norm goes into the weight scale and the bias; a
    channel whose ``g`` is negative gets its codes negated (scales stay positive).
    """
    g, shift = _bn_affine(layer, p, s)
    channels = g.shape[0]
    alpha = np.broadcast_to(np.asarray(alpha, np.float64), (channels,))
    codes = np.asarray(codes, np.int64)
    sign = np.where(g < 0, -1, 1)
    shape = (1, 1, 1, -1) if layer.kind == "depthwise" else (-1,) + (1,) * (codes.ndim - 1)
    codes = codes * sign.reshape(shape)
    s_w = np.maximum(np.abs(alpha * g), np.float64(np.finfo(np.float32).tiny)).astype(np.float32)
    bias = quantize_bias(shift + bias_shift, s_x, s_w)
    dtype = np.int8 if w_bits <= 8 else np.int16
    return PlanLayer(layer, mode, codes.astype(dtype), s_w, w_bits, out, bias=bias,
                     relu=layer.relu, a_bits=a_bits)


def _affine_plan(net, params, state, qstate, schemes_codes, mode, name, *, w_bits, a_bits,
                 a_qs, in_q=UNSIGNED_INPUT, bias_shifts=None):
    """A plan whose every layer is :func:`affine_layer` of ``schemes_codes[i] = (codes,
    alpha)``."""
    in_act = input_act(in_q)
    s_x, layers = in_act.scale, []
    for i, layer in enumerate(net.layers):
        codes, alpha = schemes_codes[i]
        out = _act(a_qs[i], tuple(float(v) for v in qstate[f"range{i}"]))
        shift = 0.0 if bias_shifts is None else bias_shifts[i]
        layers.append(affine_layer(layer, mode, codes, alpha, params[i], state[i], s_x, out,
                                   w_bits=w_bits, a_bits=8 if i == 0 else a_bits,
                                   bias_shift=shift))
        s_x = out.scale
    return Plan(net, in_act, tuple(layers), name)


def _from_scratch(net, seed):
    return init(net, jax.random.PRNGKey(seed))


# -- TWN --

def _ternary(w):
    """TWN's ternarization in JAX: ``(codes, alpha)`` per tensor (golden.ternarize's rule)."""
    a = jnp.abs(w)
    delta = 0.7 * jnp.mean(a)
    codes = jnp.where(w > delta, 1.0, jnp.where(w < -delta, -1.0, 0.0))
    kept = a > delta
    alpha = jnp.where(jnp.any(kept), jnp.sum(jnp.where(kept, a, 0.0)) /
                      jnp.maximum(jnp.sum(kept), 1), 1.0)
    return codes, alpha


class TWNScheme(LowBitScheme):
    """Ternary weights ``alpha * t`` (TWN), STE to the float weights."""

    def weight(self, i, layer, w, ctx):
        codes, alpha = _ternary(w)
        return ste(w, jax.lax.stop_gradient(alpha * codes))


def twn(net, x, y, x_cal, *, a_bits=8, seed=0, epochs=20, lr=1e-3, x_test=None, y_test=None):
    """Ternary Weight Networks (Li, Zhang and Liu 2016, arXiv:1605.04711), on ``bitserial``.

    Recipe: trained from scratch; every layer's weights ternarized in the forward pass with
    ``Delta = 0.7 E|W|`` and ``alpha`` = mean ``|W|`` above ``Delta`` (per layer), the
    gradient passed straight to the float weights; Adam (the paper: SGD with momentum) with
    batch norm. The paper keeps activations in float; the bit-serial engine needs integer
    activations, so they are ``a_bits`` unsigned codes (EMA ranges). Deployed as signed
    2-bit codes (``w_planes = 2``) with :func:`golden.ternarize`'s codes and alpha.
    """
    _check_net(net, "twn")
    params, state = _from_scratch(net, seed)
    scheme = TWNScheme(net, a_bits)
    qstate = _ranges(net, params, state, x_cal)
    params, extra, state, qstate = _train(net, scheme, params, state, qstate, x, y, seed=seed,
                                          epochs=epochs, lr=lr)
    fq = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    codes = [golden.ternarize(np.asarray(p["w"], np.float64)) for p in params]
    plan = _affine_plan(net, params, state, qstate, codes, "bitserial",
                        f"twn_{net.name}_a{a_bits}", w_bits=2, a_bits=a_bits, a_qs=scheme.a_qs)
    return Result(plan, fq)


# -- DoReFa --

class DoReFaScheme(LowBitScheme):
    """DoReFa-Net's k-bit weights and activations."""

    def __init__(self, net, w_bits, a_bits):
        super().__init__(net, a_bits)
        self.k = w_bits
        last = len(net.layers) - 1
        # DoReFa's activation is quantize_k(clip(x, 0, 1)): a fixed [0, 1] range.
        self.a_qs = [LOGIT_QUANTIZER if i == last else Quantizer(bits=a_bits, signed=False)
                     for i in range(len(net.layers))]

    def weight(self, i, layer, w, ctx):
        levels = (1 << self.k) - 1
        t = jnp.tanh(w)
        r = t / (2.0 * jnp.max(jnp.abs(t))) + 0.5
        q = ste(r, jnp.round(levels * r) / levels)  # jnp.round: half to even, as tf.round
        return 2.0 * q - 1.0

    def activation(self, i, layer, y, ctx):
        if not layer.relu:
            return super().activation(i, layer, y, ctx)
        ctx["new_qstate"][f"range{i}"] = (jnp.float32(0.0), jnp.float32(1.0))
        levels = (1 << self.a_qs[i].bits) - 1
        c = jnp.clip(y, 0.0, 1.0)
        return ste(c, jnp.round(levels * c) / levels)


def dorefa(net, x, y, x_cal, *, w_bits, a_bits, seed=0, epochs=20, lr=1e-3, x_test=None,
           y_test=None):
    """DoReFa-Net (Zhou et al. 2016, arXiv:1606.06160), W/A bits, on ``bitserial``.

    Recipe: from scratch; weights ``2 quantize_k(tanh(w) / (2 max|tanh w|) + 1/2) - 1`` and
    activations ``quantize_k(clip(x, 0, 1))`` in the forward pass, the STE through each
    ``round`` (tanh and the normalization keep their gradients); gradients in float (the
    paper's G = 32 configurations); Adam, batch norm. The paper keeps the first and last
    layers in float; here every layer's weights are k-bit so that the whole network runs on
    the PE (the input at 8 bits, the logits requantized to 8 bits). Deployed with
    :func:`golden.dorefa_quantize_weights`'s odd codes (``w_planes = k + 1``); the
    requantizer rounds half away from zero where DoReFa's ``tf.round`` rounds half to even,
    which differs only on exact ties.
    """
    _check_net(net, "dorefa")
    if w_bits < 2:
        raise ValueError(f"dorefa needs w_bits >= 2 (1-bit DoReFa weights are BinaryNet's), "
                         f"not {w_bits}")
    params, state = _from_scratch(net, seed)
    scheme = DoReFaScheme(net, w_bits, a_bits)
    qstate = _ranges(net, params, state, x_cal)
    params, extra, state, qstate = _train(net, scheme, params, state, qstate, x, y, seed=seed,
                                          epochs=epochs, lr=lr)
    fq = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    codes = [golden.dorefa_quantize_weights(np.asarray(p["w"], np.float64), w_bits)
             for p in params]
    plan = _affine_plan(net, params, state, qstate, codes, "bitserial",
                        f"dorefa_{net.name}_w{w_bits}a{a_bits}", w_bits=w_bits + 1,
                        a_bits=a_bits, a_qs=scheme.a_qs)
    return Result(plan, fq)


# -- BinaryNet / XNOR-Net --

def _sign(x):
    return jnp.where(x >= 0, 1.0, -1.0)


def _hardtanh_ste(x):
    """``sign(x)`` forward, gradient ``1_{|x| <= 1}`` (BinaryNet's STE through hardtanh)."""
    c = jnp.clip(x, -1.0, 1.0)
    return ste(c, _sign(c))


class BinaryScheme(Scheme):
    """BinaryNet: binary weights and activations; the first layer's input stays 8-bit."""

    def __init__(self, net, xnor_scaling):
        self.net, self.xnor_scaling = net, xnor_scaling
        self.in_q = UNSIGNED_INPUT

    def input(self, x, ctx):
        scale, zp = self.in_q.qparams(0.0, 1.0, xp=jnp)
        return self.in_q.fake(x, scale, zp, jnp)

    def weight(self, i, layer, w, ctx):
        b = _hardtanh_ste(w)
        if self.xnor_scaling:
            axes = tuple(range(1, w.ndim))
            b = b * jax.lax.stop_gradient(jnp.mean(jnp.abs(w), axes, keepdims=True))
        return b

    def layer(self, i, layer, p, s, x, ctx):
        w = self.weight(i, layer, p["w"], ctx)
        y = linear(layer, w, x, pad_value=0.0 if i == 0 else -1.0)
        if layer.bn:
            return batchnorm(y, p, s, ctx["train"])
        # The output layer has no BN in these networks: a learned per-class scale stands in
        # for the affine part of BinaryNet's final batch norm.
        return y * ctx["qstate"]["extra"]["out_scale"] + p["b"], s

    def activation(self, i, layer, y, ctx):
        return _hardtanh_ste(y) if layer.relu else y


def _squared_hinge(logits, y):
    target = 2.0 * jax.nn.one_hot(y, logits.shape[-1]) - 1.0
    return jnp.mean(jnp.sum(jnp.square(jax.nn.relu(1.0 - target * logits)), -1))


def binarynet(net, x, y, x_cal, *, xnor_scaling=False, seed=0, epochs=30, lr=1e-2,
              x_test=None, y_test=None):
    """BinaryNet (Courbariaux, Hubara et al. 2016, arXiv:1602.02830), on ``xnor``.

    Recipe: from scratch; weights and hidden activations binarized by ``sign`` (``sign(0) =
    +1``) with the straight-through estimator cancelled where ``|x| > 1`` (hardtanh); the
    float weights clipped to [-1, 1] after every update; batch norm after every hidden
    layer; the first layer's input not binarized (8-bit pixels); squared hinge loss; Adam
    with an exponentially decaying learning rate (from ``lr`` to ``lr / 100``).
    ``xnor_scaling``: XNOR-Net's weight scale ``alpha = mean |W|`` per output channel
    (Rastegari et al. 2016), folded into the thresholds. Binary-input convolutions pad with
    -1 (the hardware has no zero).

    Deployed: layer 0 on ``bitserial`` (8-bit unsigned input, ±1 weights as signed 2-bit
    codes) and the hidden layers on ``xnor``, each emitting ``sign(batchnorm(acc))`` through
    :func:`golden.batchnorm_thresholds`; the output layer on ``xnor`` with the requantizer
    (scale ``out_scale * alpha``, the bias) to 8-bit logits.
    """
    _check_net(net, "binarynet")
    params, state = _from_scratch(net, seed)
    last = len(net.layers) - 1
    fan_in = int(np.prod(params[last]["w"].shape[1:]))
    extra = {"out_scale": jnp.float32(1.0 / np.sqrt(fan_in))}
    scheme = BinaryScheme(net, xnor_scaling)
    steps = epochs * (len(x) // 64)
    schedule = optax.exponential_decay(lr, steps, 0.01)

    def clip(tr):
        ps, ex = tr
        return [{**p, "w": jnp.clip(p["w"], -1.0, 1.0)} for p in ps], ex

    def loss(tr, fr, xb, yb, k):
        logits, st, _ = forward(net, tr[0], fr, xb, scheme=scheme, train=True,
                                qstate={"extra": tr[1]})
        return _squared_hinge(logits, yb), st

    (params, extra), state = fit(loss, (params, extra), state, x, y,
                                 key=jax.random.PRNGKey(seed), epochs=epochs,
                                 optimizer=optax.adam(schedule), after_step=clip)
    fq = np.nan if x_test is None else accuracy(net, params, state, x_test, y_test, scheme,
                                                {"extra": extra})
    plan = _binary_plan(net, params, state, extra, scheme, x_cal, xnor_scaling)
    return Result(plan, fq)


def _binary_plan(net, params, state, extra, scheme, x_cal, xnor_scaling):
    in_act = input_act(UNSIGNED_INPUT)
    s_x, layers = in_act.scale, []
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        w = np.asarray(params[i]["w"], np.float64)
        codes, alpha = golden.binarize(w, scaled=xnor_scaling, axis=0 if xnor_scaling else None)
        alpha = np.broadcast_to(np.asarray(alpha, np.float64), (w.shape[0],))
        mode = "bitserial" if i == 0 else "xnor"
        if i < last:
            p, s = params[i], state[i]
            thresholds, invert = golden.batchnorm_thresholds(
                np.asarray(p["gamma"], np.float64), np.asarray(p["beta"], np.float64),
                np.asarray(s["mean"], np.float64), np.asarray(s["var"], np.float64), BN_EPS,
                np.maximum(s_x * alpha, 1e-30))
            layers.append(PlanLayer(layer, mode, codes, alpha.astype(np.float32).clip(1e-30),
                                    2 if mode == "bitserial" else 1, ActQuant.binary_codes(),
                                    thresholds=thresholds, invert=invert,
                                    a_bits=8 if i == 0 else 1))
            s_x = 1.0
            continue
        logits = _logits(net, params, state, scheme, {"extra": extra}, x_cal)
        out = _act(LOGIT_QUANTIZER, (float(logits.min()), float(logits.max())))
        scale = float(extra["out_scale"])
        p = {"b": params[i]["b"]}
        layers.append(affine_layer(layer, mode, codes, alpha * scale, p, {}, s_x, out,
                                   w_bits=1, a_bits=1))
    return Plan(net, in_act, tuple(layers), f"binarynet_{net.name}"
                f"{'_xnor' if xnor_scaling else ''}")


def _logits(net, params, state, scheme, qstate, x):
    out, _, _ = forward(net, params, state, jnp.asarray(x), scheme=scheme, qstate=qstate)
    return np.asarray(out)


# -- INQ --

def inq_levels(w, bits=5):
    """INQ's power-of-two set for one layer: ``(levels, n1, n2)``, levels ascending from 0.

    ``n1 = floor(log2(4 s / 3))`` with ``s = max|W|``, ``n2 = n1 + 1 - 2**(b-1) / 2``; the
    set is ``{0} U {2**n : n2 <= n <= n1}`` (Zhou et al. 2017, section 3.1).
    """
    s = float(np.max(np.abs(w)))
    n1 = int(np.floor(np.log2(4.0 * s / 3.0))) if s > 0 else 0
    n2 = n1 + 1 - (1 << (bits - 1)) // 2
    return np.concatenate([[0.0], 2.0 ** np.arange(n2, n1 + 1)]), n1, n2


def inq_quantize(w, levels):
    """Each ``|w|`` to the level whose midpoints bracket it (``(a + b) / 2 <= |w| < 3b / 2``)."""
    mids = (levels[1:] + levels[:-1]) / 2.0
    idx = np.searchsorted(mids, np.abs(w), side="right")
    return np.sign(w) * levels[idx]


class FloatActsScheme(Scheme):
    """Float activations, weights replaced where a mask says (INQ, ELQ)."""

    def weight(self, i, layer, w, ctx):
        mask, values = ctx["qstate"]["frozen"][i]
        return jnp.where(mask, values, w)


def _incremental(net, params, state, x, y, *, quantize_layer, portions, epochs_per_step, seed,
                 lr, scheme, qstate=None, curvature=None):
    """INQ's loop: quantize the largest ``portions[s]`` of each layer, retrain the rest."""
    frozen = [(np.zeros(p["w"].shape, bool), np.zeros(p["w"].shape, np.float32))
              for p in params]
    qstate = dict(qstate or {})
    for step, portion in enumerate(portions):
        new = []
        for i, p in enumerate(params):
            mask, values = frozen[i]
            w = np.where(mask, values, np.asarray(p["w"], np.float64))
            count = int(round(portion * w.size))
            order = np.argsort(-np.abs(w), axis=None, kind="stable")
            chosen = np.zeros(w.size, bool)
            chosen[order[:count]] = True
            chosen = chosen.reshape(w.shape) | mask
            d = None if curvature is None else curvature(params, state, i)
            new.append((chosen, quantize_layer(i, w, chosen, d).astype(np.float32)))
        frozen = new
        if step == len(portions) - 1:
            break
        qstate["frozen"] = [(jnp.asarray(m), jnp.asarray(v)) for m, v in frozen]
        params, _, state, qstate = _train(net, scheme, params, state, qstate, x, y,
                                          seed=seed + step, epochs=epochs_per_step, lr=lr)
    for i, (mask, values) in enumerate(frozen):
        params[i] = {**params[i], "w": jnp.asarray(np.where(mask, values, params[i]["w"]))}
    qstate["frozen"] = [(jnp.asarray(m), jnp.asarray(v)) for m, v in frozen]
    return params, state, qstate, frozen


_INQ_PORTIONS = (0.5, 0.75, 0.875, 1.0)


def inq(net, params, state, x, y, x_cal, *, w_bits=5, a_bits=8, seed=0, epochs=6, lr=1e-4,
        x_test=None, y_test=None):
    """Incremental Network Quantization (Zhou et al., ICLR 2017), on ``mac``.

    Recipe: from the trained float network; four steps with accumulated portions 50 %,
    75 %, 87.5 % and 100 %: each step quantizes the largest-magnitude weights of the portion
    (the paper's pruning-inspired partition) to INQ's ``w_bits``-bit power-of-two set
    (:func:`inq_levels`) and fixes them, then retrains the remaining float weights (Adam
    here, SGD in the paper) for ``epochs / 3`` epochs. Activations stay float in training
    (as in the paper) and are calibrated at ``a_bits`` (min/max) for deployment, with batch
    norm folded into the requantizer. A 5-bit INQ weight (zero or ``±2**n``, ``n`` in 8
    exponents) is, as an integer code at scale ``2**n2``, one of ``0, ±1, ±2, ..., ±128``:
    9-bit two's complement, stored in an int16 tensor for the mac engine (``w_bits = 9``).
    """
    # 9-bit codes need int16 weight tensors, which no depthwise kernel takes.
    _check_net(net, "inq")
    levels = [inq_levels(np.asarray(p["w"]), w_bits) for p in params]

    def quantize_layer(i, w, chosen, d):
        return np.where(chosen, inq_quantize(w, levels[i][0]), 0.0)

    scheme = FloatActsScheme()
    params, state, qstate, frozen = _incremental(
        net, list(params), state, x, y, quantize_layer=quantize_layer, portions=_INQ_PORTIONS,
        epochs_per_step=max(1, epochs // 3), seed=seed, lr=lr, scheme=scheme)
    fq = np.nan if x_test is None else accuracy(net, params, state, x_test, y_test, scheme,
                                                qstate)
    codes = []
    for i, (_, values) in enumerate(frozen):
        n2 = levels[i][2]
        codes.append((np.round(values.astype(np.float64) / 2.0 ** n2).astype(np.int64),
                      2.0 ** n2))
    return Result(_calibrated_affine_plan(net, params, state, codes, x_cal, scheme, qstate,
                                          a_bits, 9, f"inq_{net.name}_w{w_bits}a{a_bits}"),
                  fq, {"plan_fake_quant_accuracy": np.nan})


def _calibrated_affine_plan(net, params, state, codes, x_cal, scheme, qstate, a_bits, w_bits,
                            name, mode="mac"):
    """Plan of fixed weight codes with activations calibrated (min/max) on ``x_cal``: signed
    asymmetric on ``mac``, unsigned with zero point 0 on ``bitserial``."""
    acts = _recorded(net, params, state, scheme, qstate, x_cal)
    signed = mode == "mac"
    last = len(net.layers) - 1
    a_qs = [LOGIT_QUANTIZER if i == last else Quantizer(bits=a_bits, signed=signed)
            for i in range(len(net.layers))]
    ranges = {f"range{i}": (float(a.min()), float(a.max())) for i, a in enumerate(acts)}
    return _affine_plan(net, params, state, ranges, codes, mode, name, w_bits=w_bits,
                        a_bits=a_bits, a_qs=a_qs,
                        in_q=Quantizer(bits=8) if signed else UNSIGNED_INPUT)


def _recorded(net, params, state, scheme, qstate, x):
    """Every layer's output under ``scheme`` on ``x`` (numpy)."""
    class _Rec(type(scheme)):
        def activation(self, i, layer, y, ctx):
            y = super().activation(i, layer, y, ctx)
            ctx["new_qstate"][f"act{i}"] = y
            return y

    rec = _Rec.__new__(_Rec)
    rec.__dict__.update(scheme.__dict__)
    _, _, out = forward(net, params, state, jnp.asarray(x), scheme=rec, qstate=qstate)
    return [np.asarray(out[f"act{i}"]) for i in range(len(net.layers))]


# -- SYQ --

class SYQScheme(LowBitScheme):
    """SYQ's ternary weights with learned per-row (output channel) scales."""

    def weight(self, i, layer, w, ctx):
        eta = 0.05 * jnp.max(jnp.abs(w))
        codes = jax.lax.stop_gradient(jnp.where(w > eta, 1.0, jnp.where(w < -eta, -1.0, 0.0)))
        alpha = ctx["qstate"]["extra"][f"alpha{i}"]
        wq = alpha.reshape((-1,) + (1,) * (w.ndim - 1)) * codes
        # Gradient to alpha through the product, to the float weights straight through.
        return wq + (w - jax.lax.stop_gradient(w))


def syq(net, params, state, x, y, x_cal, *, a_bits=8, seed=0, epochs=8, lr=1e-3, x_test=None,
        y_test=None):
    """SYQ, symmetric quantization (Faraone et al., CVPR 2018), ternary, on ``bitserial``.

    Recipe: from the trained float network; weights ternarized symmetrically with the
    threshold ``eta = 0.05 max|W|`` per layer, each row of a layer's weight matrix (one
    output channel: the GEMM's row) scaled by its own learned ``alpha`` (initialized to the
    mean ``|W|`` above ``eta``), trained by gradient descent with the STE passing the
    gradient to the float weights; activations ``a_bits`` unsigned (EMA ranges). The
    per-row scales are exactly the requantizer's per-channel scales. (SYQ's pixel-wise
    scales for convolutions, one per kernel position, would need a scale inside the dot
    product, which neither the engine nor TFLite has; they are not implemented.)
    """
    _check_net(net, "syq")
    extra = {}
    for i, p in enumerate(params):
        w = np.asarray(p["w"], np.float64).reshape(p["w"].shape[0], -1)
        eta = 0.05 * np.abs(w).max()
        kept = np.abs(w) > eta
        extra[f"alpha{i}"] = jnp.asarray(np.where(kept.any(1), (np.abs(w) * kept).sum(1) /
                                                  np.maximum(kept.sum(1), 1), 1.0), jnp.float32)
    scheme = SYQScheme(net, a_bits)
    qstate = _ranges(net, params, state, x_cal)
    params, extra, state, qstate = _train(net, scheme, list(params), state, qstate, x, y,
                                          seed=seed, epochs=epochs, lr=lr, extra=extra)
    fq = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    codes = []
    for i, p in enumerate(params):
        w = np.asarray(p["w"], np.float64)
        eta = 0.05 * np.abs(w).max()
        codes.append((np.where(w > eta, 1, np.where(w < -eta, -1, 0)),
                      np.abs(np.asarray(extra[f"alpha{i}"], np.float64))))
    plan = _affine_plan(net, params, state, qstate, codes, "bitserial",
                        f"syq_{net.name}_a{a_bits}", w_bits=2, a_bits=a_bits, a_qs=scheme.a_qs)
    return Result(plan, fq)


# -- ELQ --

def elq_ternary(w, d, iterations=10):
    """ELQ's loss-aware ternarization of ``w`` with curvature weights ``d``: ``(codes, alpha)``.

    Alternates ``codes = sign(w) 1_{|w| > alpha / 2}`` and
    ``alpha = sum(d |w|) / sum(d)`` over the nonzero codes, which minimizes the
    second-order loss change ``sum d (w - alpha codes)**2`` for each in turn.
    """
    a = np.abs(w)
    alpha = float(np.mean(a)) or 1.0
    codes = np.sign(w)
    for _ in range(iterations):
        codes = np.where(a > alpha / 2.0, np.sign(w), 0.0)
        nz = codes != 0
        if not nz.any():
            break
        alpha = float(np.sum(d[nz] * a[nz]) / np.sum(d[nz]))
    return codes, alpha


def elq(net, params, state, x, y, x_cal, *, a_bits=8, seed=0, epochs=6, lr=1e-4, x_test=None,
        y_test=None):
    """ELQ, explicit loss-error-aware quantization (Zhou et al., AAAI 2018), ternary.

    Recipe: from the trained float network, incrementally as INQ (portions 50, 75, 87.5 and
    100 % by magnitude, the rest retrained in float between steps); the chosen weights of a
    layer are ternarized by :func:`elq_ternary`, which minimizes the second-order
    approximation of the loss increase ``sum d_i (w_i - alpha t_i)**2`` with ``d`` the
    diagonal curvature. ELQ approximates ``d`` by Adam's second moment; here ``d`` is the
    same quantity measured directly, the mean squared gradient over the training set
    (the empirical Fisher) at each step. Activations float in training, ``a_bits``
    unsigned codes (calibrated min/max) when deployed on ``bitserial``.
    """
    _check_net(net, "elq")
    xj, yj = jnp.asarray(x[:1024]), jnp.asarray(y[:1024])
    scheme = FloatActsScheme()

    def curvature(params, state, i):
        def loss(w, xb, yb):
            ps = [{**p, "w": w} if j == i else p for j, p in enumerate(params)]
            return cross_entropy(forward(net, ps, state, xb[None])[0], yb[None])
        grads = jax.vmap(jax.grad(loss), (None, 0, 0))(params[i]["w"], xj, yj)
        return np.asarray(jnp.mean(grads ** 2, 0), np.float64) + 1e-12

    def quantize_layer(i, w, chosen, d):
        codes, alpha = elq_ternary(w[chosen], d[chosen])
        out = np.zeros_like(w)
        out[chosen] = alpha * codes
        return out

    params, state, qstate, frozen = _incremental(
        net, list(params), state, x, y, quantize_layer=quantize_layer,
        portions=_INQ_PORTIONS, epochs_per_step=max(1, epochs // 3), seed=seed, lr=lr,
        scheme=scheme, curvature=curvature)
    fq = np.nan if x_test is None else accuracy(net, params, state, x_test, y_test, scheme,
                                                qstate)
    codes = []
    for _, values in frozen:
        alpha = float(np.max(np.abs(values))) or 1.0
        codes.append((np.round(values / alpha).astype(np.int64), alpha))
    plan = _calibrated_affine_plan(net, params, state, codes, x_cal, scheme, qstate, a_bits, 2,
                                   f"elq_{net.name}_a{a_bits}", mode="bitserial")
    return Result(plan, fq)


# -- TSQ --

class TSQScheme(LowBitScheme):
    """TSQ step 1: float weights, sparse quantized activations ``Q(relu(y - eps))``."""

    def __init__(self, net, a_bits, eps):
        super().__init__(net, a_bits)
        self.eps = eps

    def pre_activation(self, i, layer, y, ctx):
        return y - self.eps[i] if layer.relu else y

    def weight(self, i, layer, w, ctx):
        frozen = ctx["qstate"].get("tsq_w")
        return w if frozen is None else frozen[i]


def tsq(net, params, state, x, y, x_cal, *, a_bits=2, seed=0, epochs=6, lr=1e-4,
        sparsity=0.5, x_test=None, y_test=None):
    """Two-Step Quantization (Wang et al., CVPR 2018): sparse activations, then ternary weights.

    Step 1 (code learning): from the trained float network, fine-tune with float weights and
    each hidden activation sparse-quantized to ``a_bits`` codes: values below a threshold
    ``eps`` become 0, the rest are quantized uniformly. ``eps`` per layer is the quantile
    ``sparsity`` of the positive float activations on the calibration set. The engine's
    requantizer has no dead zone, so the form used (in training and deployed alike) is
    ``Q(relu(y - eps))``: ``eps`` is subtracted in the bias, which keeps the dead zone and
    the uniform steps but lowers every nonzero level by ``eps``.
    Step 2 (transformation function learning): layer by layer, with the quantized inputs
    ``X`` of the already-ternarized layers before it, fit ternary weights ``t`` and a
    per-channel ``alpha`` minimizing ``||X W - alpha X t||**2`` (the layer's float response),
    by alternating the closed-form ``alpha`` and ``t = ternary(W_ls / alpha)`` with
    ``W_ls`` the least-squares solution; no further fine-tuning. Deployed on ``bitserial``.
    """
    _check_net(net, "tsq")
    acts = float_activations(net, params, state, x_cal)
    eps = [float(np.quantile(a[a > 0], sparsity)) if layer.relu and np.any(a > 0) else 0.0
           for a, layer in zip(acts, net.layers, strict=True)]
    scheme = TSQScheme(net, a_bits, eps)
    qstate = _ranges(net, params, state, x_cal)
    params, extra, state, qstate = _train(net, scheme, list(params), state, qstate, x, y,
                                          seed=seed, epochs=epochs, lr=lr)
    step1 = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    ternary, codes = [], []
    for i in range(len(net.layers)):
        xq = _layer_inputs(net, params, state, scheme, qstate, x_cal, i, ternary)
        w = np.asarray(params[i]["w"], np.float64).reshape(params[i]["w"].shape[0], -1)
        t, alpha = _tsq_fit(xq, w)
        ternary.append(jnp.asarray((alpha[:, None] * t).reshape(params[i]["w"].shape),
                                   jnp.float32))
        codes.append((t.reshape(params[i]["w"].shape).astype(np.int64), alpha))
    qstate = {**qstate, "tsq_w": ternary}
    fq = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    plan = _affine_plan(net, params, state, qstate, codes, "bitserial",
                        f"tsq_{net.name}_a{a_bits}", w_bits=2, a_bits=a_bits, a_qs=scheme.a_qs,
                        bias_shifts=[-e for e in eps])
    return Result(plan, fq, {"step1_accuracy": step1, "eps": eps})


def _layer_inputs(net, params, state, scheme, qstate, x, i, ternary):
    """Layer ``i``'s quantized input rows (im2col for convolutions) on ``x``."""
    qs = {**qstate, "tsq_w": ternary + [p["w"] for p in params[len(ternary):]]}
    inp = jnp.asarray(x)
    if i > 0:
        inp = jnp.asarray(_recorded(net, params, state, scheme, qs, x)[i - 1])
    else:
        inp = scheme.input(inp, {"train": False})
    layer = net.layers[i]
    if layer.kind == "dense":
        return np.asarray(inp.reshape(inp.shape[0], -1), np.float64)
    from .train import _pad_same, _patches
    if layer.padding == "SAME":
        inp = _pad_same(inp, layer.kernel, layer.stride, 0.0)
    cols = _patches(inp, layer.kernel, layer.stride)
    return np.asarray(cols.reshape(-1, cols.shape[-1]), np.float64)


def _tsq_fit(xq, w, iterations=5):
    target = xq @ w.T                                   # (rows, channels)
    gram = xq.T @ xq + 1e-6 * np.eye(xq.shape[1])
    w_ls = np.linalg.solve(gram, xq.T @ target).T       # least squares, (channels, K)
    t = np.asarray(golden.ternarize(w, 0.7, axis=0)[0], np.float64)
    alpha = np.ones(w.shape[0])
    for _ in range(iterations):
        xt = xq @ t.T
        alpha = np.sum(xt * target, 0) / np.maximum(np.sum(xt * xt, 0), 1e-12)
        alpha = np.where(alpha > 0, alpha, np.abs(w).mean(1))
        t = np.clip(golden.round_half_away(w_ls / alpha[:, None]), -1, 1)
    return t, alpha


# -- CLIP-Q --

class ClipQScheme(LowBitScheme):
    """CLIP-Q: pruned and quantized weights in the forward pass, float weights updated."""

    def __init__(self, net, w_bits, a_bits, prune):
        super().__init__(net, a_bits, signed_acts=True, input_quantizer=Quantizer(bits=8))
        self.w_bits, self.prune = w_bits, prune

    def weight(self, i, layer, w, ctx):
        return ste(w, jax.lax.stop_gradient(clipq_weights(w, self.w_bits, self.prune,
                                                          layer.kind, jnp)))


def clipq_weights(w, bits, prune, kind, xp=np):
    """Prune the ``prune`` fraction of smallest ``|w|`` per layer, quantize the rest
    symmetrically (per channel, ``bits``-bit narrow range); returns real values."""
    a = xp.abs(w)
    cut = xp.quantile(a, prune) if prune > 0 else -1.0
    q = weight_quantizer(bits, "channel", kind)
    axes = tuple(d for d in range(w.ndim) if d != q.axis % w.ndim)
    hi = xp.max(a, axes)
    scale, zp = q.qparams(-hi, hi, xp=xp)
    shape = q.channel_shape(w.ndim)
    return xp.where(a > cut, q.fake(w, scale.reshape(shape), zp.reshape(shape), xp), 0.0)


def clipq(net, params, state, x, y, x_cal, *, w_bits, a_bits=8, prune=0.5, seed=0, epochs=8,
          lr=1e-4, x_test=None, y_test=None):
    """CLIP-Q, compression learning by in-parallel pruning-quantization (Tung and Mori, CVPR 2018).

    Recipe: from the trained float network, fine-tune with, in every forward pass, each
    layer's smallest-magnitude fraction ``prune`` of weights set to 0 and the rest quantized
    to ``w_bits``; the float weights receive the updates and are re-partitioned at every
    step, so pruned weights can come back (the paper's in-parallel clipping and
    quantization). Deviations: one ``(prune, w_bits)`` for all layers instead of the
    paper's per-layer Bayesian search, and the quantization levels are the symmetric
    uniform grid of the engine's integer weights (per channel) instead of the means of the
    partition intervals. Activations ``a_bits`` (EMA ranges); deployed on ``mac`` with the
    pruned weights as zero codes.
    """
    scheme = ClipQScheme(net, w_bits, a_bits, prune)
    qstate = _ranges(net, params, state, x_cal)
    params, extra, state, qstate = _train(net, scheme, list(params), state, qstate, x, y,
                                          seed=seed, epochs=epochs, lr=lr)
    fq = _eval(net, params, state, qstate, extra, scheme, x_test, y_test)
    codes, zeros = [], 0
    for p, layer in zip(params, net.layers, strict=True):
        w = np.asarray(p["w"], np.float64)
        a = np.abs(w)
        cut = np.quantile(a, prune)
        q = weight_quantizer(w_bits, "channel", layer.kind)
        axes = tuple(d for d in range(w.ndim) if d != q.axis % w.ndim)
        hi = np.max(a, axes)
        scale, _ = q.export(-hi, hi)
        c = np.where(a > cut, q.codes(w.astype(np.float32),
                                      scale.reshape(q.channel_shape(w.ndim)), 0), 0)
        zeros += int(np.sum(c == 0))
        codes.append((c.astype(np.int64), scale.astype(np.float64)))
    plan = _affine_plan(net, params, state, qstate, codes, "mac",
                        f"clipq_{net.name}_w{w_bits}a{a_bits}", w_bits=w_bits, a_bits=a_bits,
                        a_qs=scheme.a_qs, in_q=Quantizer(bits=8))
    total = sum(int(np.size(p["w"])) for p in params)
    return Result(plan, fq, {"zero_weights": zeros / total})


# -- Sun et al.: feature quantization against adversarial examples --

class FeatureQuantScheme(Scheme):
    """Features quantized as ``floor(beta x) / beta`` (STE), codes up to ``2**bits - 1``."""

    def __init__(self, beta, bits=8):
        self.beta, self.top = float(beta), float((1 << bits) - 1)

    def activation(self, i, layer, y, ctx):
        if not layer.relu:
            return y
        y = jnp.clip(jax.nn.relu(y), 0.0, self.top / self.beta)
        return ste(y, jnp.floor(self.beta * y) / self.beta)


def feature_quantization(net, params, state, x, y, x_cal, *, beta=4.0, seed=0, epochs=8,
                         lr=1e-4, x_test=None, y_test=None):
    """Feature quantization (Sun, Ozay, Zhang, Liu and Okatani, "Feature quantization for
    defending against distortion of images", CVPR 2018): ``floor(beta x) / beta`` on every
    hidden feature map, fine-tuned from the float network with the STE.

    Deployed on ``mac``: a feature code is ``floor(beta x)``, stored as int8 with scale
    ``1 / beta`` and zero point -128 (codes 0..255, so features above ``255 / beta`` clip).
    ``floor(v) = round_half_away(v - 1/2)`` for ``v >= 0``, so the requantizer computes it
    with ``1 / (2 beta)`` subtracted in the bias; the logits are 8-bit (min/max).
    """
    scheme = FeatureQuantScheme(beta)
    params, extra, state, _ = _train(net, scheme, list(params), state, {}, x, y, seed=seed,
                                     epochs=epochs, lr=lr)
    fq = _eval(net, params, state, {}, extra, scheme, x_test, y_test)
    weights, biases = fold_numpy(net, params, state)
    logits = _logits(net, params, state, scheme, {}, x_cal)
    last = len(net.layers) - 1
    ranges, a_qs = [], []
    for i, layer in enumerate(net.layers):
        if i == last:
            ranges.append((float(logits.min()), float(logits.max())))
            a_qs.append(LOGIT_QUANTIZER)
        else:
            # Quantizer(8) over [0, 255 / beta] gives scale 1 / beta and zero point -128.
            ranges.append((0.0, 255.0 / beta))
            a_qs.append(Quantizer(bits=8))
        biases[i] = biases[i] - (0.5 / beta if layer.relu else 0.0)
    w_qs = [weight_quantizer(8, "channel", layer.kind) for layer in net.layers]
    plan = make_plan(net, weights, biases, ranges, w_quantizers=w_qs, a_quantizers=a_qs,
                     name=f"featq_{net.name}_beta{beta:g}")
    return Result(plan, fq, {"beta": beta, "scheme": scheme, "params": params, "state": state,
                             "plan_fake_quant_accuracy": _eval(net, params, state, {}, {},
                                                               PlanScheme(plan), x_test,
                                                               y_test)})


def fgsm(net, params, state, x, y, eps, scheme=None, qstate=None):
    """FGSM adversarial images (Goodfellow et al. 2015): ``clip(x + eps sign(grad), 0, 1)``.

    The gradient of the cross-entropy of ``scheme``'s network (the STE's gradient through
    quantizers), computed in one batch.
    """
    def loss(xb):
        logits, _, _ = forward(net, params, state, xb, scheme=scheme, qstate=qstate)
        return cross_entropy(logits, jnp.asarray(y))
    grad = jax.grad(loss)(jnp.asarray(x))
    return np.clip(np.asarray(x) + eps * np.sign(np.asarray(grad)), 0.0, 1.0).astype(np.float32)
