"""Small networks as pure JAX functions over parameter pytrees, and their seeded training.

Three networks for the 8x8 digits (:data:`NETS`), all with batch normalization after
every hidden layer and ReLU: an MLP, a small CNN and a depthwise-separable CNN. Weights are
stored in TFLite's layouts (OHWI convolutions, ``(1, KH, KW, C)`` depthwise, ``(out, in)``
dense) so that export is a cast, not a transpose.

:func:`forward` runs a network under a *scheme*: an object whose methods may replace the
input, a layer's weights, the whole linear + batch-norm step, or the activation. The float
network is :class:`Scheme` itself; every quantization method (:mod:`nets.methods`)
subclasses it. Training (:func:`fit`) is ``jax.jit`` of one optax update of
``loss(trainable, frozen, batch)``; every random choice comes from one
``jax.random.PRNGKey`` split per use, so a run is a function of its seed (deterministic on
CPU).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .arch import input_features

__all__ = ["BN_EPS", "BN_MOMENTUM", "Scheme", "accuracy", "batchnorm",
           "bn_fold", "cross_entropy", "fit", "forward", "init", "linear", "predict", "train_float"]

#: Batch-norm epsilon and running-statistics momentum (``new = m * old + (1 - m) * batch``).
BN_EPS, BN_MOMENTUM = 1e-5, 0.9


def init(net, key):
    """He-normal weights, zero biases, unit BN: ``(params, state)`` pytrees (lists of dicts)."""
    params, state = [], []
    for layer, fan_in in zip(net.layers, input_features(net), strict=True):
        key, sub = jax.random.split(key)
        if layer.kind == "conv":
            shape, fan = (layer.features, layer.kernel, layer.kernel, fan_in), \
                layer.kernel ** 2 * fan_in
        elif layer.kind == "depthwise":
            shape, fan = (1, layer.kernel, layer.kernel, fan_in), layer.kernel ** 2
        else:
            shape, fan = (layer.features, fan_in), fan_in
        p = {"w": jax.random.normal(sub, shape, jnp.float32) * jnp.sqrt(2.0 / fan)}
        channels = shape[-1] if layer.kind == "depthwise" else shape[0]
        if layer.bn:
            p["gamma"] = jnp.ones(channels, jnp.float32)
            p["beta"] = jnp.zeros(channels, jnp.float32)
            state.append({"mean": jnp.zeros(channels, jnp.float32),
                          "var": jnp.ones(channels, jnp.float32)})
        else:
            p["b"] = jnp.zeros(channels, jnp.float32)
            state.append({})
        params.append(p)
    return params, state


def linear(layer, w, x, pad_value=0.0):
    """The layer's linear map of ``x`` by weights ``w`` (TFLite layouts); no bias.

    ``pad_value`` fills SAME padding (0.0 for real zeros; binary layers pad with -1).
    """
    if layer.kind == "dense":
        return x.reshape(x.shape[0], -1) @ w.T
    if layer.padding == "SAME":
        x = _pad_same(x, layer.kernel, layer.stride, pad_value)
    if layer.kind == "depthwise":
        return _depthwise_valid(x, w[0], layer.stride)
    # im2col and one matmul: XLA's CPU convolution is several times slower on 8x8 images.
    cols = _patches(x, layer.kernel, layer.stride)
    return cols @ w.reshape(w.shape[0], -1).T


def _taps(x, kernel, stride):
    """The ``kernel**2`` strided slices of ``x`` that a VALID convolution's taps see."""
    oh = (x.shape[1] - kernel) // stride + 1
    ow = (x.shape[2] - kernel) // stride + 1
    return [x[:, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride]
            for i in range(kernel) for j in range(kernel)]


def _patches(x, kernel, stride):
    """im2col in (kh, kw, c) order, an OHWI filter's flattening: (N, oh, ow, k*k*C)."""
    return jnp.concatenate(_taps(x, kernel, stride), axis=-1)


def _depthwise_valid(x, w, stride):
    # A sum of shifted, scaled copies: XLA's grouped convolution is ~20x slower on CPU here.
    taps = _taps(x, w.shape[0], stride)
    return sum(tap * w[t // w.shape[1], t % w.shape[1]] for t, tap in enumerate(taps))


def _pad_same(x, kernel, stride, value):
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)


def batchnorm(y, p, s, train):
    """Batch norm over all but the last axis: ``(out, new_state)`` (batch stats when training)."""
    axes = tuple(range(y.ndim - 1))
    if train:
        mean, var = jnp.mean(y, axes), jnp.var(y, axes)
        new = {"mean": BN_MOMENTUM * s["mean"] + (1 - BN_MOMENTUM) * mean,
               "var": BN_MOMENTUM * s["var"] + (1 - BN_MOMENTUM) * var}
    else:
        mean, var, new = s["mean"], s["var"], s
    return (y - mean) * (p["gamma"] / jnp.sqrt(var + BN_EPS)) + p["beta"], new


def bn_fold(layer, w, p, mean, var):
    """Batch norm folded into the weights and a bias (Jacob et al. 2018, section 3.2).

    ``w_fold = w * gamma / sqrt(var + eps)`` per output channel and
    ``b_fold = beta - gamma * mean / sqrt(var + eps)``; a layer without BN returns ``w, b``.
    """
    if not layer.bn:
        return w, p["b"]
    factor = p["gamma"] / jnp.sqrt(var + BN_EPS)
    shape = (1, 1, 1, -1) if layer.kind == "depthwise" else (-1,) + (1,) * (w.ndim - 1)
    return w * factor.reshape(shape), p["beta"] - mean * factor


class Scheme:
    """The float network; quantization methods override some of these steps.

    Each method receives ``ctx``, a dict with ``train`` (bool), ``qstate`` (the method's
    range statistics going in) and ``new_qstate`` (filled with the statistics going out),
    and ``key`` (a PRNGKey or None).
    """

    pad_value = 0.0

    def input(self, x, ctx):
        """The network's input."""
        return x

    def weight(self, i, layer, w, ctx):
        """The weights layer ``i`` multiplies by."""
        return w

    def layer(self, i, layer, p, s, x, ctx):
        """Linear step plus BN (or bias) of layer ``i``: ``(y, new_bn_state)``."""
        y = linear(layer, self.weight(i, layer, p["w"], ctx), x, self.pad_value)
        if layer.bn:
            return batchnorm(y, p, s, ctx["train"])
        return y + p["b"], s

    def activation(self, i, layer, y, ctx):
        """ReLU after hidden layers."""
        return jax.nn.relu(y) if layer.relu else y


def forward(net, params, state, x, *, scheme=None, train=False, qstate=None, key=None):
    """Logits of a batch: ``(logits, new_state, new_qstate)``."""
    scheme = scheme or Scheme()
    ctx = {"train": train, "qstate": qstate or {}, "new_qstate": {}, "key": key}
    x = scheme.input(x, ctx)
    new_state = []
    for i, (layer, p, s) in enumerate(zip(net.layers, params, state, strict=True)):
        y, s = scheme.layer(i, layer, p, s, x, ctx)
        new_state.append(s)
        x = scheme.activation(i, layer, y, ctx)
    return x, new_state, {**ctx["qstate"], **ctx["new_qstate"]}


def predict(net, params, state, x, scheme=None, qstate=None, batch=512):
    """Class predictions (numpy) of evaluation-mode inference, in batches."""
    fn = jax.jit(lambda p, s, q, xb: forward(net, p, s, xb, scheme=scheme, qstate=q)[0])
    out = [np.asarray(fn(params, state, qstate or {}, jnp.asarray(x[i:i + batch])))
           for i in range(0, len(x), batch)]
    return np.argmax(np.concatenate(out), axis=1)


def accuracy(net, params, state, x, y, scheme=None, qstate=None):
    """Fraction of ``x`` classified as ``y``."""
    return float(np.mean(predict(net, params, state, x, scheme, qstate) == np.asarray(y)))


def fit(loss, trainable, frozen, x, y, *, key, epochs, batch=64, optimizer=None,
        after_step=None, on_epoch=None):
    """Minimize ``loss(trainable, frozen, xb, yb, key) -> (value, frozen)`` with optax.

    ``frozen`` carries what the loss updates but the optimizer does not (BN running
    statistics, range statistics). Each epoch visits ``x`` in a permutation drawn from
    ``key``; the last partial batch is dropped. ``after_step(trainable) -> trainable`` runs
    after each update (weight clipping, masks); ``on_epoch(epoch, trainable, frozen)`` may
    return new ``(trainable, frozen)`` between epochs (schedules, incremental steps).
    """
    optimizer = optimizer or optax.adam(1e-3)
    opt_state = optimizer.init(trainable)

    def step(carry, batch_and_key):
        trainable, frozen, opt_state = carry
        xb, yb, k = batch_and_key
        (_, frozen), grads = jax.value_and_grad(loss, has_aux=True)(trainable, frozen, xb, yb,
                                                                    k)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        if after_step is not None:
            trainable = after_step(trainable)
        return (trainable, frozen, opt_state), None

    @jax.jit
    def run_epoch(trainable, frozen, opt_state, xs, ys, keys):
        # One scan over the epoch's batches: one dispatch per epoch, not per step.
        (trainable, frozen, opt_state), _ = jax.lax.scan(step, (trainable, frozen, opt_state),
                                                         (xs, ys, keys))
        return trainable, frozen, opt_state

    x, y = jnp.asarray(x), jnp.asarray(y)
    steps = len(x) // batch
    for epoch in range(epochs):
        if on_epoch is not None:
            # May change the pytree's values, not its structure: the moments carry on.
            trainable, frozen = on_epoch(epoch, trainable, frozen)
        key, perm_key, steps_key = jax.random.split(key, 3)
        order = jax.random.permutation(perm_key, len(x))[:steps * batch]
        xs = x[order].reshape(steps, batch, *x.shape[1:])
        ys = y[order].reshape(steps, batch)
        trainable, frozen, opt_state = run_epoch(trainable, frozen, opt_state, xs, ys,
                                                 jax.random.split(steps_key, steps))
    return trainable, frozen


def cross_entropy(logits, y):
    """Mean softmax cross-entropy against integer labels."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def train_float(net, x, y, *, seed=0, epochs=30, lr=1e-3, batch=64):
    """Train the float network with Adam from a seeded He init: ``(params, state)``."""
    key = jax.random.PRNGKey(seed)
    init_key, fit_key = jax.random.split(key)
    params, state = init(net, init_key)

    def loss(params, state, xb, yb, k):
        logits, state, _ = forward(net, params, state, xb, train=True)
        return cross_entropy(logits, yb), state

    return fit(loss, params, state, x, y, key=fit_key, epochs=epochs, batch=batch,
               optimizer=optax.adam(lr))
