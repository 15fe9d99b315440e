"""Quantization methods on the digits networks: PTQ, QAT, DSQ (JAX training, numpy plans).

Each method takes a trained float network (or trains its own), and returns a
:class:`Result`: the integer :class:`nets.export.Plan` that :func:`nets.export.to_graph`
deploys, and the fake-quant accuracy measured during training. Recipes are stated in each
function's docstring with the paper they follow; the low-bit papers' methods live in
:mod:`nets.lowbit_methods`.
"""

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .export import ActQuant, Plan, PlanLayer
from .quantizer import Quantizer, quantize_bias
from .train import (
    Scheme,
    accuracy,
    batchnorm,
    bn_fold,
    cross_entropy,
    fit,
    forward,
    linear,
)

__all__ = ["INPUT_QUANTIZER", "LOGIT_QUANTIZER", "DSQScheme", "PlanScheme", "QATScheme",
           "Result", "clipped_ste", "dsq", "float_activations", "fold_numpy", "initial_ranges",
           "input_act", "make_plan", "plan_from_ranges", "ptq", "qat", "ste",
           "weight_quantizer"]

#: The graph input: pixels in [0, 1] as int8 at scale 1/255, zero point -128 (the shared
#: digits_cnn model's input); kept at 8 bits for every method (first-layer inputs are).
INPUT_QUANTIZER = Quantizer(bits=8)
#: The logits: 8 bits, asymmetric, min/max (kept at 8 bits for every method).
LOGIT_QUANTIZER = Quantizer(bits=8)


@dataclass
class Result:
    """What a method produced: the integer plan and its accuracies before deployment."""

    plan: Plan
    fake_quant_accuracy: float
    extra: dict = field(default_factory=dict)


def ste(x, q):
    """Straight-through estimator: the value of ``q``, the gradient of ``x``."""
    return x + jax.lax.stop_gradient(q - x)


def weight_quantizer(bits, granularity, kind):
    """Symmetric narrow-range weights (TFLite's -127..127 at 8 bits), per tensor or channel."""
    return Quantizer(bits=bits, symmetric=True, narrow_range=True, granularity=granularity,
                     axis=3 if kind == "depthwise" else 0)


def fold_numpy(net, params, state):
    """Batch norm folded with the running statistics: lists of float64 weights and biases."""
    ws, bs = [], []
    for layer, p, s in zip(net.layers, params, state, strict=True):
        w, b = bn_fold(layer, p["w"], p, s.get("mean"), s.get("var"))
        ws.append(np.asarray(w, np.float64))
        bs.append(np.asarray(b, np.float64))
    return ws, bs


def input_act(quantizer=INPUT_QUANTIZER):
    """The input's :class:`ActQuant` for pixels in [0, 1]."""
    scale, zp = quantizer.export(0.0, 1.0)
    return ActQuant(float(scale[0]), int(zp[0]), quantizer.bits, quantizer.signed)


def make_plan(net, weights, biases, act_ranges, *, w_quantizers, a_quantizers,
              in_act=None, w_ranges=None, name=""):
    """A mac-engine :class:`Plan` from folded float weights and calibrated ranges.

    Layer ``i``'s weights are quantized by ``w_quantizers[i]`` over ``w_ranges[i]`` (or
    their min/max), its bias to int32 at ``s_x * s_w`` (:func:`quantize_bias`), and its
    output stored by ``a_quantizers[i]`` over ``act_ranges[i]``.
    """
    in_act = in_act or input_act()
    s_x = in_act.scale
    layers = []
    for i, layer in enumerate(net.layers):
        wq = w_quantizers[i]
        lo, hi = w_ranges[i] if w_ranges is not None else wq.observe(weights[i])
        s_w, _ = wq.export(lo, hi)
        codes = wq.integer(weights[i], s_w.reshape(wq.channel_shape(weights[i].ndim)), 0)
        bias = quantize_bias(biases[i], s_x, s_w)
        aq = a_quantizers[i]
        s_y, zp_y = aq.export(*act_ranges[i])
        out = ActQuant(float(s_y[0]), int(zp_y[0]), aq.bits, aq.signed)
        layers.append(PlanLayer(layer, "mac", codes, s_w, wq.bits, out, bias=bias,
                                relu=layer.relu))
        s_x = out.scale
    return Plan(net, in_act, tuple(layers), name)


class PlanScheme(Scheme):
    """Fake-quant evaluation of a requantizing plan: its codes and scales, in float.

    Weights are ``codes * s_w``, biases ``codes * s_x * s_w``, every output is fake
    quantized with its stored scale and zero point (:meth:`Quantizer.fake`): the float
    simulation of exactly the numbers the integer graph holds.
    """

    def __init__(self, plan):
        self.plan = plan

    def input(self, x, ctx):
        a = self.plan.input
        return Quantizer(bits=a.bits, signed=a.signed).fake(x, a.scale, a.zero_point, jnp)

    def layer(self, i, layer, p, s, x, ctx):
        pl = self.plan.layers[i]
        s_x = (self.plan.input if i == 0 else self.plan.layers[i - 1].out).scale
        shape = (1, 1, 1, -1) if layer.kind == "depthwise" else (-1,) + (1,) * (pl.w.ndim - 1)
        s_w = jnp.asarray(pl.w_scale, jnp.float32)
        w = jnp.asarray(pl.w, jnp.float32) * (s_w.reshape(shape) if s_w.size > 1 else s_w)
        bias = jnp.asarray(pl.bias, jnp.float32) * (np.float32(s_x) * s_w)
        return linear(layer, w, x) + bias, s

    def activation(self, i, layer, y, ctx):
        out = self.plan.layers[i].out
        y = jax.nn.relu(y) if layer.relu else y
        return Quantizer(bits=out.bits, signed=out.signed).fake(y, out.scale, out.zero_point,
                                                                jnp)


class _Record(Scheme):
    """The float network, recording every layer's output in ``new_qstate``."""

    def activation(self, i, layer, y, ctx):
        y = super().activation(i, layer, y, ctx)
        ctx["new_qstate"][f"act{i}"] = y
        return y


def float_activations(net, params, state, x):
    """Every layer's float output (after ReLU) on ``x``: a list of numpy arrays."""
    _, _, rec = forward(net, params, state, jnp.asarray(x), scheme=_Record())
    return [np.asarray(rec[f"act{i}"]) for i in range(len(net.layers))]


def _act_quantizers(net, a_bits, calibration="minmax", symmetric=False):
    last = len(net.layers) - 1
    return [LOGIT_QUANTIZER if i == last else
            Quantizer(bits=a_bits, symmetric=symmetric, calibration=calibration)
            for i in range(len(net.layers))]


def ptq(net, params, state, x_cal, *, w_bits, a_bits, granularity="channel",
        calibration="minmax", x_test=None, y_test=None, input_bits=8):
    """Post-training quantization (Krishnamoorthi 2018; Jacob et al. 2018).

    Recipe: batch norm folded into the weights with the running statistics
    (``w * gamma / sigma``, ``beta - gamma * mu / sigma``); weights symmetric, narrow range,
    ``w_bits`` wide, per tensor or per output channel, their scale from min/max; each
    hidden activation ``a_bits`` wide, asymmetric, its range calibrated on the float
    network's outputs over ``x_cal`` by min/max, a percentile (99.99) or MSE; logits and
    the input at 8 bits (``input_bits``: another width, e.g. 4 for a network whose every
    activation is 4 bits wide); bias int32 at ``s_x * s_w``.
    """
    weights, biases = fold_numpy(net, params, state)
    acts = float_activations(net, params, state, x_cal)
    a_qs = _act_quantizers(net, a_bits, calibration)
    ranges = [q.observe(a) for q, a in zip(a_qs, acts, strict=True)]
    w_qs = [weight_quantizer(w_bits, granularity, layer.kind) for layer in net.layers]
    in_act = input_act(INPUT_QUANTIZER if input_bits == 8 else Quantizer(bits=input_bits))
    plan = make_plan(net, weights, biases, ranges, w_quantizers=w_qs, a_quantizers=a_qs,
                     in_act=in_act, name=f"ptq_{net.name}_w{w_bits}a{a_bits}"
                     + ("" if input_bits == 8 else f"_in{input_bits}"))
    fq = np.nan if x_test is None else accuracy(net, params, state, x_test, y_test,
                                                PlanScheme(plan))
    return Result(plan, fq)


# -- QAT: fake quantization with STE and EMA ranges, batch norm folded in training --

class QATScheme(Scheme):
    """Fake quantization for training (Jacob et al. 2018; PyTorch's QAT recipe).

    Weights: batch norm folded into them (Jacob et al., section 3.2 and figure C.8): the
    float convolution gives the batch statistics, the weights are folded with them (with
    the running statistics once ``freeze_bn`` is set, and always in evaluation), fake
    quantized per channel (symmetric, min/max of the folded weights) and the convolution
    is run again with them. Activations: fake quantized with ranges tracked by an
    exponential moving average of the batch min/max (decay 0.99, PyTorch's
    ``MovingAverageMinMaxObserver``), frozen when ``freeze_ranges``. Gradients: the
    straight-through estimator, zero outside the quantization range (PyTorch's
    ``FakeQuantize`` backward).
    """

    def __init__(self, net, w_bits, a_bits, granularity="channel", decay=0.99):
        self.net = net
        self.w_qs = [weight_quantizer(w_bits, granularity, layer.kind) for layer in net.layers]
        self.a_qs = _act_quantizers(net, a_bits)
        self.in_q = INPUT_QUANTIZER
        self.decay = decay

    @staticmethod
    def _flags(ctx):
        # (freeze_bn, freeze_ranges) as traced 0/1 floats, so one compiled step serves all.
        return ctx["qstate"].get("flags", (0.0, 0.0))

    def input(self, x, ctx):
        scale, zp = self.in_q.qparams(0.0, 1.0, xp=jnp)
        return self.in_q.fake(x, scale, zp, jnp)

    def weight(self, i, layer, w, ctx):
        q = self.w_qs[i]
        axes = None if not q.per_channel else tuple(a for a in range(w.ndim)
                                                    if a != q.axis % w.ndim)
        lo = jax.lax.stop_gradient(jnp.min(w, axes))
        hi = jax.lax.stop_gradient(jnp.max(w, axes))
        scale, zp = q.qparams(lo, hi, xp=jnp)
        shape = q.channel_shape(w.ndim)
        return clipped_ste(q, w, scale.reshape(shape), zp.reshape(shape))

    def layer(self, i, layer, p, s, x, ctx):
        if not layer.bn:
            return linear(layer, self.weight(i, layer, p["w"], ctx), x) + p["b"], s
        if ctx["train"]:
            frozen = self._flags(ctx)[0]
            y_float = linear(layer, p["w"], x)
            axes = tuple(range(y_float.ndim - 1))
            mean, var = jnp.mean(y_float, axes), jnp.var(y_float, axes)
            _, new = batchnorm(y_float, p, s, True)
            mean = jnp.where(frozen > 0, s["mean"], jax.lax.stop_gradient(mean))
            var = jnp.where(frozen > 0, s["var"], jax.lax.stop_gradient(var))
            s = jax.tree_util.tree_map(lambda old, upd: jnp.where(frozen > 0, old, upd), s, new)
        else:
            mean, var = s["mean"], s["var"]
        w, b = bn_fold(layer, p["w"], p, mean, var)
        return linear(layer, self.weight(i, layer, w, ctx), x) + b, s

    def activation(self, i, layer, y, ctx):
        y = jax.nn.relu(y) if layer.relu else y
        key = f"range{i}"
        lo, hi = ctx["qstate"][key]
        if ctx["train"]:
            decay = jnp.where(self._flags(ctx)[1] > 0, 1.0, self.decay)
            batch_lo, batch_hi = jax.lax.stop_gradient(jnp.min(y)), jax.lax.stop_gradient(
                jnp.max(y))
            lo = decay * lo + (1 - decay) * batch_lo
            hi = decay * hi + (1 - decay) * batch_hi
        ctx["new_qstate"][key] = (lo, hi)
        q = self.a_qs[i]
        scale, zp = q.qparams(lo, hi, xp=jnp)
        return clipped_ste(q, y, scale, zp)


def clipped_ste(q, x, scale, zp):
    """``q``'s fake quantization with the STE, gradient zero where ``x`` is clamped."""
    lo = (q.qmin - zp) * scale
    hi = (q.qmax - zp) * scale
    xc = jnp.clip(x, lo, hi)
    return ste(xc, q.fake(xc, scale, zp, jnp))


def initial_ranges(net, params, state, x_cal):
    """Min/max of each layer's float output on ``x_cal``: the starting EMA ranges."""
    acts = float_activations(net, params, state, x_cal)
    return {f"range{i}": (jnp.float32(a.min()), jnp.float32(a.max()))
            for i, a in enumerate(acts)}


def plan_from_ranges(net, params, state, qstate, w_qs, a_qs, name, w_ranges=None):
    """The plan of a trained fake-quant network: folded weights, its activation ranges."""
    weights, biases = fold_numpy(net, params, state)
    ranges = [tuple(float(v) for v in qstate[f"range{i}"]) for i in range(len(net.layers))]
    return make_plan(net, weights, biases, ranges, w_quantizers=w_qs, a_quantizers=a_qs,
                     w_ranges=w_ranges, name=name)


def qat(net, params, state, x, y, x_cal, *, w_bits, a_bits, granularity="channel", seed=0,
        epochs=8, lr=1e-4, x_test=None, y_test=None):
    """Quantization-aware training from the float network (the PyTorch QAT tutorial's recipe).

    Start from the trained float weights and min/max ranges over ``x_cal``; fine-tune with
    :class:`QATScheme` and Adam (``lr``) for ``epochs`` epochs; batch-norm statistics are
    frozen (running statistics used for the folding) after 60 % of the epochs and the
    activation ranges after 80 %, as the tutorial freezes them near the end. The plan is
    exported from the final folded weights and EMA ranges.
    """
    qstate = initial_ranges(net, params, state, x_cal)
    scheme = QATScheme(net, w_bits, a_bits, granularity)

    def loss(p, fr, xb, yb, k):
        logits, st, qs = forward(net, p, fr[0], xb, scheme=scheme, train=True, qstate=fr[1])
        return cross_entropy(logits, yb), (st, qs)

    trained, (state, qstate) = fit(loss, params, (state, qstate), x, y,
                                   key=jax.random.PRNGKey(seed), epochs=epochs,
                                   optimizer=optax.adam(lr), on_epoch=_freeze_schedule(epochs))
    name = f"qat_{net.name}_w{w_bits}a{a_bits}"
    plan = plan_from_ranges(net, trained, state, qstate, scheme.w_qs, scheme.a_qs, name)
    fq = np.nan if x_test is None else accuracy(net, trained, state, x_test, y_test, scheme,
                                                qstate)
    return Result(plan, fq, {"plan_fake_quant_accuracy": np.nan if x_test is None else
                             accuracy(net, trained, state, x_test, y_test, PlanScheme(plan))})


def _freeze_schedule(epochs, bn_at=0.6, ranges_at=0.8):
    """``on_epoch`` that freezes BN statistics after ``bn_at`` and ranges after ``ranges_at``
    of the epochs."""
    def on_epoch(epoch, trainable, frozen):
        state, qstate = frozen
        flags = (jnp.float32(epoch >= int(bn_at * epochs)),
                 jnp.float32(epoch >= int(ranges_at * epochs)))
        return trainable, (state, {**qstate, "flags": flags})
    return on_epoch


# -- DSQ --

class DSQScheme(QATScheme):
    """Differentiable Soft Quantization (Gong et al., ICCV 2019), on QAT's folded network.

    For a range ``[l, u]`` with ``2**b - 1`` intervals of width ``Delta``, a value in
    interval ``i`` (centre ``m_i``) maps to ``phi(x) = s * tanh(k (x - m_i))`` with
    ``k = log(2 / alpha - 1) / Delta`` and ``s = 1 / tanh(k Delta / 2)``. The forward pass
    uses the hard quantizer ``l + Delta (i + (sign(phi) + 1) / 2)`` and the backward pass
    ``phi``'s gradient (the paper's implementation), so the loss is that of the deployed
    quantizer while gradients flow through the tanh. The clipping bound ``u`` (``l = 0``
    after ReLU; ``l = -u`` for weights, symmetric) and the characteristic variable
    ``alpha`` are learnable per layer; ``alpha`` starts at 0.2 and is kept in
    ``[1e-3, 0.5]``. As the paper notes, a small ``alpha`` makes ``phi`` the hard step; the
    deployed network is the hard quantizer on the learned ranges.

    Grids: activations have ``2**b`` levels on ``[0, u]`` (asymmetric, zero point at the
    bottom); weights ``2**b - 1`` levels on ``[-u, u]`` (symmetric narrow range, because
    the engine's weights have zero point 0: the paper's ``2**b`` weight levels in ``[l, u]``
    would not contain 0).
    """

    def __init__(self, net, w_bits, a_bits, granularity="tensor"):
        super().__init__(net, w_bits, a_bits, granularity)

    def weight(self, i, layer, w, ctx):
        u, alpha = ctx["qstate"]["dsq"][f"w{i}"]
        q = self.w_qs[i]
        # The bound is learned freely; its magnitude is the clipping value.
        u = jnp.abs(u)
        return _dsq(w, -u, u, q.qmax - q.qmin, alpha)

    def activation(self, i, layer, y, ctx):
        y = jax.nn.relu(y) if layer.relu else y
        if not layer.relu:
            return super().activation(i, layer, y, ctx)
        u, alpha = ctx["qstate"]["dsq"][f"a{i}"]
        q = self.a_qs[i]
        return _dsq(y, 0.0, jnp.abs(u), q.qmax - q.qmin, alpha)


def _dsq(x, lo, hi, intervals, alpha):
    delta = (hi - lo) / intervals
    xc = jnp.clip(x, lo, hi)
    i = jax.lax.stop_gradient(jnp.clip(jnp.floor((xc - lo) / delta), 0, intervals - 1))
    centre = lo + (i + 0.5) * delta
    alpha = jnp.clip(alpha, 1e-3, 0.5)
    k = jnp.log(2.0 / alpha - 1.0) / delta
    s = 1.0 / jnp.tanh(0.5 * k * delta)
    phi = s * jnp.tanh(k * (xc - centre))
    hard = jnp.where(phi >= 0, 1.0, -1.0)
    # The paper's sign with its straight-through gradient: value of sign, gradient of phi.
    return lo + delta * (i + (ste(phi, hard) + 1.0) / 2.0)


def dsq(net, params, state, x, y, x_cal, *, w_bits, a_bits, seed=0, epochs=8, lr=1e-4,
        quantizer_lr=1e-2, x_test=None, y_test=None):
    """DSQ fine-tuning from the float network (see :class:`DSQScheme`).

    Adam: ``lr`` for the network's weights, ``quantizer_lr`` for the clipping bounds and
    ``alpha`` (O(1) values that ``lr`` would barely move in a few epochs; the paper trains
    them jointly with the network by backpropagation, without giving a separate rate).
    """
    weights, _ = fold_numpy(net, params, state)
    acts = float_activations(net, params, state, x_cal)
    dsq_params = {}
    for i, layer in enumerate(net.layers):
        dsq_params[f"w{i}"] = (jnp.float32(np.abs(weights[i]).max()), jnp.float32(0.2))
        if layer.relu:
            dsq_params[f"a{i}"] = (jnp.float32(acts[i].max()), jnp.float32(0.2))
    qstate = initial_ranges(net, params, state, x_cal)
    scheme = DSQScheme(net, w_bits, a_bits)

    def loss(tr, fr, xb, yb, k):
        logits, st, qs = forward(net, tr[0], fr[0], xb, scheme=scheme, train=True,
                                 qstate={**fr[1], "dsq": tr[1]})
        qs.pop("dsq")
        return cross_entropy(logits, yb), (st, qs)

    def on_epoch(epoch, trainable, frozen):
        # BN statistics freeze after 60 % of the epochs; the logits' range stays calibrated.
        state, qstate = frozen
        flags = (jnp.float32(epoch >= int(0.6 * epochs)), jnp.float32(1.0))
        return trainable, (state, {**qstate, "flags": flags})

    trained, frozen = fit(loss, (params, dsq_params), (state, qstate), x, y,
                          key=jax.random.PRNGKey(seed), epochs=epochs,
                          optimizer=optax.multi_transform(
                              {"net": optax.adam(lr), "quantizer": optax.adam(quantizer_lr)},
                              ("net", jax.tree_util.tree_map(lambda _: "quantizer",
                                                             dsq_params))),
                          on_epoch=on_epoch)
    params, dsq_params = trained
    state, qstate = frozen
    fq = np.nan if x_test is None else accuracy(net, params, state, x_test, y_test, scheme,
                                                {**qstate, "dsq": dsq_params})
    # Deploy the hard quantizer on the learned ranges: weights [-u, u], activations [0, u].
    w_ranges = [(-abs(float(dsq_params[f"w{i}"][0])), abs(float(dsq_params[f"w{i}"][0])))
                for i in range(len(net.layers))]
    for i, layer in enumerate(net.layers):
        if layer.relu:
            qstate[f"range{i}"] = (0.0, abs(float(dsq_params[f"a{i}"][0])))
    plan = plan_from_ranges(net, params, state, qstate, scheme.w_qs, scheme.a_qs,
                            f"dsq_{net.name}_w{w_bits}a{a_bits}", w_ranges)
    return Result(plan, fq, {"alpha": {k: float(v[1]) for k, v in dsq_params.items()}})

