"""nets.lower: engine layers planned into commands that fit, computing what golden computes."""

import re

import numpy as np
import pytest

import golden
from hw.config import ArrayConfig
from nets import Graph, Op, Quant, Tensor
from nets.lower import (
    LoweringError,
    check_engine,
    engine_layer_output,
    plan_layer,
    plan_network,
)

ACTIVATIONS = ("linear", "relu", "relu6", "relu_n1_to_1")


def _layer_graph(kind, x_shape, w, bias, *, x_q, w_scale, y_q, y_shape, **options):
    """A one-op graph: tensors x, w, bias, y."""
    tensors = [
        Tensor(0, "x", x_shape, "int8", Quant(*x_q)),
        Tensor(1, "w", w.shape, "int8", Quant(w_scale, 0, axis=3 if kind.startswith("DEPTH")
                                              else 0), w),
        Tensor(2, "b", bias.shape, "int32", Quant(np.float32(x_q[0]) * w_scale, 0), bias),
        Tensor(3, "y", y_shape, "int8", Quant(*y_q)),
    ]
    return Graph(tensors, [Op(0, kind, (0, 1, 2), (3,), options)], [0], [3])


def _random_quant(rng):
    return (float(rng.uniform(0.005, 0.05)), int(rng.integers(-128, 128)))


def _random_config(rng):
    """A small engine whose limits force splits in M and N."""
    return ArrayConfig(rows=int(rng.integers(1, 9)), cols=int(rng.integers(1, 9)),
                       dataflow=str(rng.choice(["ws", "os"])),
                       max_m=int(rng.integers(1, 40)), max_n=int(rng.integers(1, 12)),
                       max_k=512)


def _random_conv(rng, depthwise=False):
    batch = int(rng.integers(1, 3))
    h, wd = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    cin = int(rng.integers(1, 6))
    mult = int(rng.integers(1, 3)) if depthwise else 1
    cout = cin * mult if depthwise else int(rng.integers(1, 7))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID" and ((kh - 1) * dilation[0] + 1 > h
                               or (kw - 1) * dilation[1] + 1 > wd):
        padding = "SAME"
    oh, ow, _, _ = golden.conv_output_shape(h, wd, (kh, kw), stride, padding, dilation)
    x = rng.integers(-128, 128, (batch, h, wd, cin)).astype(np.int8)
    w_shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    w = rng.integers(-127, 128, w_shape).astype(np.int8)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    x_q, y_q = _random_quant(rng), _random_quant(rng)
    w_scale = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    activation = str(rng.choice(ACTIVATIONS))
    options = dict(stride=stride, padding=padding, dilation=dilation, activation=activation)
    if depthwise:
        options["depth_multiplier"] = mult
    kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    graph = _layer_graph(kind, (1, h, wd, cin), w, bias, x_q=x_q, w_scale=w_scale, y_q=y_q,
                         y_shape=(1, oh, ow, cout), **options)
    return graph, x, dict(w=w, bias=bias, x_q=x_q, y_q=y_q, w_scale=w_scale, options=options,
                          mult=mult)


def _slow_depthwise(x, w, bias, x_zp, m0, shift, y_zp, act_min, act_max, options, mult):
    """Depthwise conv by loops over output pixels and taps (padding by TensorFlow's rule)."""
    batch, h, wd, cin = x.shape
    _, kh, kw, _ = w.shape
    (sh, sw), (dh, dw) = options["stride"], options["dilation"]
    oh, ow, (pt, _), (pl, _) = golden.conv_output_shape(h, wd, (kh, kw), (sh, sw),
                                                        options["padding"], (dh, dw))
    acc = np.zeros((batch, oh, ow, cin * mult), dtype=np.int64)
    for b in range(batch):
        for i in range(oh):
            for j in range(ow):
                for c in range(cin):
                    for q in range(mult):
                        total = int(bias[c * mult + q])
                        for u in range(kh):
                            for v in range(kw):
                                r, s = i * sh - pt + u * dh, j * sw - pl + v * dw
                                if 0 <= r < h and 0 <= s < wd:
                                    total += (int(x[b, r, s, c]) - x_zp) * int(
                                        w[0, u, v, c * mult + q])
                        acc[b, i, j, c * mult + q] = total
    return golden.requantize(acc, m0, shift, y_zp, act_min, act_max)


def _assert_commands_cover(plan, config):
    """Every command fits the engine; together they take every tap of every output exactly
    once (all of K in one command, or its blocks in several on a raw engine)."""
    seen = np.zeros((plan.m, int(plan.channels[-1][1]), plan.k), dtype=np.int64)
    for cmd, (m, k, n) in zip(plan.commands, plan.command_shapes(), strict=True):
        assert 1 <= m <= config.max_m and 1 <= k <= config.max_k and 1 <= n <= config.max_n
        lo = plan.channels[cmd.group][0] + cmd.cols[0]
        k0, k1 = cmd.depth if cmd.depth is not None else (0, plan.weights[cmd.group].shape[0])
        assert k1 - k0 == k
        seen[cmd.rows[0]:cmd.rows[1], lo:lo + cmd.n, k0:k1] += 1
    for g, (c0, c1) in enumerate(plan.channels):
        taps = plan.weights[g].shape[0]
        assert (seen[:, c0:c1, :taps] == 1).all()
        assert (seen[:, c0:c1, taps:] == 0).all()


def _golden_conv(x, p):
    """The TFLite convolution of :func:`_random_conv`'s parameters ``p``, by golden."""
    return golden.quantized_conv2d(
        x, p["w"], p["bias"], x_scale=p["x_q"][0], x_zero_point=p["x_q"][1],
        w_scale=p["w_scale"], w_zero_point=0, y_scale=p["y_q"][0],
        y_zero_point=p["y_q"][1], stride=p["options"]["stride"],
        padding=p["options"]["padding"], dilation=p["options"]["dilation"],
        activation=p["options"]["activation"])


def test_conv_layers_give_tflite_conv_on_any_engine(rng):
    for _ in range(60):
        graph, x, p = _random_conv(rng)
        config = _random_config(rng)
        plan = plan_network(graph, config, batch=x.shape[0])[0]
        _assert_commands_cover(plan, config)
        np.testing.assert_array_equal(engine_layer_output(plan, x), _golden_conv(x, p))


def test_k_split_on_a_raw_engine_gives_tflite_conv(rng):
    # K over max_k: commands of at most max_k taps whose raw partial sums the host adds.
    for _ in range(30):
        graph, x, p = _random_conv(rng)
        k = p["w"].shape[1] * p["w"].shape[2] * p["w"].shape[3]
        config = _random_config(rng).replace(requant=False,
                                             max_k=int(rng.integers(1, max(2, k))))
        plan = plan_network(graph, config, batch=x.shape[0])[0]
        _assert_commands_cover(plan, config)
        assert len({c.depth for c in plan.commands}) > 1 or k <= config.max_k
        np.testing.assert_array_equal(engine_layer_output(plan, x), _golden_conv(x, p))


def test_depthwise_layers_give_the_slow_reference(rng):
    for _ in range(40):
        graph, x, p = _random_conv(rng, depthwise=True)
        config = _random_config(rng)
        plan = plan_network(graph, config, batch=x.shape[0])[0]
        _assert_commands_cover(plan, config)
        real = golden.real_multiplier(p["x_q"][0], p["w_scale"], p["y_q"][0])
        m0, shift = golden.quantize_multiplier(real)
        act = golden.activation_range(p["options"]["activation"], p["y_q"][0], p["y_q"][1])
        expected = _slow_depthwise(x, p["w"], p["bias"], p["x_q"][1], m0, shift, p["y_q"][1],
                                   *act, p["options"], p["mult"])
        np.testing.assert_array_equal(engine_layer_output(plan, x), expected)


def test_depthwise_groups_fill_the_columns():
    """Groups of cols // multiplier channels, each a block-diagonal GEMM."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (1, 3, 3, 24)).astype(np.int8)
    graph = _layer_graph("DEPTHWISE_CONV_2D", (1, 6, 6, 12), w, np.zeros(24, np.int32),
                         x_q=(0.1, 0), w_scale=np.full(24, 0.01, np.float32), y_q=(0.1, 0),
                         y_shape=(1, 6, 6, 24), stride=(1, 1), padding="SAME",
                         dilation=(1, 1), activation="linear", depth_multiplier=2)
    plan = plan_network(graph, ArrayConfig(rows=8, cols=8))[0]
    assert plan.groups == 3
    assert plan.command_shapes() == [(36, 36, 8)] * 3
    block = plan.weights[0]
    # Column i * 2 + j of group 0 reads input channel i only: rows i, i + 4, i + 8, ...
    for col in range(8):
        rows = np.flatnonzero(block[:, col])
        assert set(rows % 4) <= {col // 2}
    assert plan.macs == 36 * 9 * 24


def test_fully_connected_uses_the_two_step_requantizer(rng):
    for _ in range(30):
        batch, k, n = (int(v) for v in rng.integers(1, 40, 3))
        x = rng.integers(-128, 128, (batch, k)).astype(np.int8)
        w = rng.integers(-127, 128, (n, k)).astype(np.int8)
        bias = rng.integers(-5000, 5000, n).astype(np.int32)
        x_q, y_q = _random_quant(rng), _random_quant(rng)
        w_scale = rng.uniform(0.002, 0.02, n).astype(np.float32)
        activation = str(rng.choice(ACTIVATIONS))
        graph = _layer_graph("FULLY_CONNECTED", (1, k), w, bias, x_q=x_q, w_scale=w_scale,
                             y_q=y_q, y_shape=(1, n), keep_num_dims=False,
                             activation=activation)
        config = _random_config(rng)
        plan = plan_network(graph, config, batch=batch)[0]
        _assert_commands_cover(plan, config)
        expected = golden.quantized_fully_connected_two_step(
            x, w, bias, x_scale=x_q[0], x_zero_point=x_q[1], w_scale=w_scale, w_zero_point=0,
            y_scale=y_q[0], y_zero_point=y_q[1], activation=activation)
        np.testing.assert_array_equal(engine_layer_output(plan, x), expected)


def test_raw_engines_with_host_requantization_give_tflite_everywhere(rng):
    """--no-requant: the engine's int32 sums, then TFLite's own output stage on the host
    (double precision for FULLY_CONNECTED), equal golden's TFLite kernels exactly."""
    for _ in range(20):
        for depthwise in (False, True):
            graph, x, _ = _random_conv(rng, depthwise=depthwise)
            config = _random_config(rng).replace(requant=False)
            plan = plan_network(graph, config, batch=x.shape[0])[0]
            np.testing.assert_array_equal(engine_layer_output(plan, x),
                                          graph.run(x))
        batch, k, n = (int(v) for v in rng.integers(1, 40, 3))
        x = rng.integers(-128, 128, (batch, k)).astype(np.int8)
        w = rng.integers(-127, 128, (n, k)).astype(np.int8)
        graph = _layer_graph("FULLY_CONNECTED", (1, k), w,
                             rng.integers(-5000, 5000, n).astype(np.int32),
                             x_q=_random_quant(rng),
                             w_scale=rng.uniform(0.002, 0.02, n).astype(np.float32),
                             y_q=_random_quant(rng), y_shape=(1, n), keep_num_dims=False,
                             activation=str(rng.choice(ACTIVATIONS)))
        plan = plan_network(graph, _random_config(rng).replace(requant=False), batch=batch)[0]
        np.testing.assert_array_equal(engine_layer_output(plan, x), graph.run(x))


def test_fully_connected_rounding_differs_on_the_requantizer_and_not_on_the_host():
    """Accumulators where gemmlowp's two-step rounding and TFLite's double-precision FC
    requantization disagree (found by search over these scales): the requantizing engine
    gives the two-step answer there, a raw engine plus the host gives TFLite's."""
    x_scale, w_scale, y_scale = 0.033663277, 0.0068561607, 0.0068438086
    real = golden.real_multiplier(x_scale, w_scale, y_scale)
    m0, shift = golden.quantize_multiplier(real)
    acc = np.arange(-4000, 4000)
    differ = acc[golden.requantize(acc, m0, shift, 0, -128, 127)
                 != golden.requantize_fp64(acc, real, 0, -128, 127)]
    assert differ.size >= 4
    # One input element 1 (zero point 0) and weight 1: output c's accumulator is bias[c] + 1.
    bias = (np.concatenate([differ[:4], [0, 17]]) - 1).astype(np.int32)
    n = bias.size
    graph = _layer_graph("FULLY_CONNECTED", (1, 1), np.ones((n, 1), np.int8), bias,
                         x_q=(x_scale, 0), w_scale=np.full(n, w_scale, np.float32),
                         y_q=(y_scale, 0), y_shape=(1, n), keep_num_dims=False,
                         activation="linear")
    x = np.ones((1, 1), np.int8)
    tflite = graph.run(x)
    on_engine = engine_layer_output(plan_network(graph, ArrayConfig())[0], x)
    on_host = engine_layer_output(plan_network(graph, ArrayConfig(requant=False))[0], x)
    np.testing.assert_array_equal(on_host, tflite)
    assert list(on_engine[0] != tflite[0]) == [True] * 4 + [False] * 2


def _conv_graph(k_taps=3, cin=40):
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (4, k_taps, k_taps, cin)).astype(np.int8)
    return _layer_graph("CONV_2D", (1, 5, 5, cin), w, np.zeros(4, np.int32), x_q=(0.1, 0),
                        w_scale=np.full(4, 0.01, np.float32), y_q=(0.1, 0),
                        y_shape=(1, 3, 3, 4), stride=(1, 1), padding="VALID",
                        dilation=(1, 1), activation="linear")


def test_k_beyond_max_k_names_the_layer_and_what_it_needs():
    with pytest.raises(LoweringError, match=re.escape(
            "op 0 (CONV_2D) needs K = 360, over the engine's max_k 256; build it with "
            "--max-k 360 or more")):
        plan_network(_conv_graph(), ArrayConfig())


@pytest.mark.parametrize(("fields", "needs"), [
    ({"pe_mode": "xnor"}, "pe_mode 'mac' (not 'xnor')"),
    ({"threshold": True}, "a requantizer or raw outputs (not --threshold)"),
    ({"a_bits": 4}, "signed activations of at least 8 bits (not a_bits 4, a_signed True)"),
    ({"acc_bits": 24}, "acc_bits 32 (not 24)"),
])
def test_engines_that_cannot_run_int8_layers_are_refused(fields, needs):
    with pytest.raises(LoweringError, match=rf"^int8 TFLite layers need an engine with .*"
                                            rf"{re.escape(needs)}"):
        check_engine(ArrayConfig(**fields))


def test_host_ops_are_not_planned():
    graph = _conv_graph(cin=4)
    op = Op(0, "ADD", (0, 0), (3,), {})
    with pytest.raises(LoweringError, match=r"^op 0 \(ADD\) does not run on the engine"):
        plan_layer(graph, op, ArrayConfig())
