"""Training determinism, integer export against the fake-quant model, and a reduced study.

Training budget: these tests train tiny networks for one or two epochs (about a minute
on two cores in total). The full grid is ``python -m nets.study`` (README, "Accuracy").
"""

import importlib.util
import json

import numpy as np
import pytest

import golden

pytest.importorskip("jax")
pytest.importorskip("sklearn")

from nets.arch import NETS  # noqa: E402
from nets.data import TEST_IMAGES, TRAIN_IMAGES, load_digits, shifted  # noqa: E402
from nets.export import to_graph  # noqa: E402

needs_executor = pytest.mark.skipif(importlib.util.find_spec("nets.execute") is None,
                                    reason="nets.execute (the golden executor) is not here yet")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def mlp(digits):
    from nets.train import train_float
    x, y = shifted(digits.x_train, digits.y_train)
    return train_float(NETS["mlp"], x, y, seed=3, epochs=2)


def test_split_is_the_shared_models(digits, shared_path):
    assert digits.x_train.shape == (TRAIN_IMAGES, 8, 8, 1)
    assert digits.x_test.shape == (TEST_IMAGES, 8, 8, 1)
    with np.load(shared_path("models/digits_cnn.npz")) as ref:
        assert np.array_equal(ref["y_test"], digits.y_test)
        # The shared model's input is clip(round(pixel / 16 * 255) - 128).
        q = golden.quantize(digits.x_test, np.float32(1 / 255), -128)
        assert np.array_equal(q, ref["x_test"])


def test_training_is_deterministic(digits, mlp):
    from nets.train import train_float
    x, y = shifted(digits.x_train, digits.y_train)
    again = train_float(NETS["mlp"], x, y, seed=3, epochs=2)
    for a, b in zip(mlp[0], again[0], strict=True):
        for k in a:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    other = train_float(NETS["mlp"], x, y, seed=4, epochs=2)
    assert not np.array_equal(np.asarray(mlp[0][0]["w"]), np.asarray(other[0][0]["w"]))


def test_ptq_plan_codes_are_the_fake_quant_models(digits, mlp):
    """The plan's first layer, run in integers, gives the fake-quant model's pre-activation:
    ``acc = (x_codes - zx) . w_codes + bias`` equals ``y_fake / (s_x s_w)`` up to float
    rounding of the fake-quant sum (never a whole step)."""
    import jax.numpy as jnp

    from nets.methods import PlanScheme, ptq
    from nets.train import linear
    params, state = mlp
    r = ptq(NETS["mlp"], params, state, digits.x_calibration, w_bits=4, a_bits=4)
    pl = r.plan.layers[0]
    scheme = PlanScheme(r.plan)
    x = digits.x_test[:50]
    xf = np.asarray(scheme.input(jnp.asarray(x), {}))
    a = r.plan.input
    x_codes = golden.quantize(x, np.float32(a.scale), a.zero_point).reshape(50, -1)
    # The fake-quant input is exactly scale * (codes - zero point).
    np.testing.assert_array_equal(xf.reshape(50, -1),
                                  np.float32(a.scale) * (x_codes.astype(np.float32)
                                                         - a.zero_point))
    acc = golden.gemm(x_codes, pl.w.T, a.zero_point, 0, pl.bias).astype(np.int64)
    y_fake, _ = scheme.layer(0, NETS["mlp"].layers[0], params[0], state[0], jnp.asarray(xf), {})
    units = np.asarray(y_fake, np.float64) / (np.float64(np.float32(a.scale))
                                              * pl.w_scale.astype(np.float64))
    assert np.max(np.abs(units - acc)) < 0.01
    assert np.asarray(linear(NETS["mlp"].layers[0], jnp.ones((3, 64)), jnp.ones((1, 64)))
                      ).tolist() == [[64.0, 64.0, 64.0]]


@needs_executor
@pytest.mark.parametrize("method", ["ptq", "qat"])
def test_integer_graph_agrees_with_fake_quant(digits, mlp, method):
    """The integer graph's logits against the fake-quant model's, both from one plan: the
    codes agree except where the float32 fake-quant sum and the integer requantizer round a
    near-tie differently, by one step."""
    import jax.numpy as jnp

    from nets import methods
    from nets.methods import PlanScheme
    from nets.train import forward
    params, state = mlp
    x, y = shifted(digits.x_train[:256], digits.y_train[:256])
    if method == "ptq":
        r = methods.ptq(NETS["mlp"], params, state, digits.x_calibration, w_bits=4, a_bits=4)
    else:
        r = methods.qat(NETS["mlp"], params, state, x, y, digits.x_calibration, w_bits=4,
                        a_bits=4, epochs=1)
    graph = to_graph(r.plan)
    a = r.plan.input
    xq = golden.quantize(digits.x_test, np.float32(a.scale), a.zero_point)
    logits = graph.run(xq)
    fake, _, _ = forward(NETS["mlp"], params, state, jnp.asarray(digits.x_test),
                         scheme=PlanScheme(r.plan))
    out = r.plan.layers[-1].out
    fake_codes = np.round(np.asarray(fake, np.float64) / out.scale + out.zero_point)
    diff = np.abs(fake_codes - logits.astype(np.int64))
    print(f"{method}: {np.mean(diff > 0):.4%} of logits differ by one step")
    assert diff.max() <= 1
    assert np.mean(diff > 0) < 0.02


@needs_executor
def test_qmac_ops_against_plain_integer_arithmetic(rng):
    """QMAC_XNOR and QMAC_BITSERIAL layers against numpy int64 matmuls and comparisons."""
    from nets.arch import Layer
    from nets.export import ActQuant, Plan, PlanLayer
    net = NETS["mlp"]
    n = 7
    w1 = rng.choice([-1, 1], size=(64, 64)).astype(np.int8)
    t1 = rng.integers(-3000, 3000, 64).astype(np.int32)
    inv1 = rng.integers(0, 2, 64).astype(np.uint8)
    w2 = rng.choice([-1, 1], size=(64, 64)).astype(np.int8)
    t2 = rng.integers(-10, 10, 64).astype(np.int32)
    inv2 = rng.integers(0, 2, 64).astype(np.uint8)
    w3 = rng.choice([-1, 1], size=(10, 64)).astype(np.int8)
    b3 = rng.integers(-50, 50, 10).astype(np.int32)
    out3 = ActQuant(0.37, -5, 8)
    s3 = rng.uniform(0.01, 0.2, 10).astype(np.float32)
    binary = ActQuant.binary_codes()
    plan = Plan(net, ActQuant(1 / 255, 0, 8, signed=False), (
        PlanLayer(net.layers[0], "bitserial", w1, np.ones(64, np.float32), 2, binary,
                  thresholds=t1, invert=inv1, a_bits=8),
        PlanLayer(net.layers[1], "xnor", w2, np.ones(64, np.float32), 1, binary,
                  thresholds=t2, invert=inv2, a_bits=1),
        PlanLayer(Layer("dense", 10, bn=False, relu=False), "xnor", w3, s3, 1, out3,
                  bias=b3, a_bits=1)))
    x = rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8)
    got = to_graph(plan).run(x)
    h = x.reshape(n, -1).astype(np.int64) @ w1.T.astype(np.int64)
    h = np.where((h >= t1) != inv1.astype(bool), 1, -1)
    h = h @ w2.T.astype(np.int64)
    h = np.where((h >= t2) != inv2.astype(bool), 1, -1)
    acc = h @ w3.T.astype(np.int64) + b3
    m0, shift = golden.quantize_multiplier(golden.real_multiplier(1.0, s3, 0.37))
    want = golden.requantize(acc, m0, shift, -5, -128, 127)
    assert np.array_equal(got, want)


def test_lowbit_methods_refuse_the_depthwise_net(digits):
    from nets.lowbit_methods import twn
    with pytest.raises(ValueError, match=r"^method 'twn' runs the mlp and cnn networks \(its "
                                         r"PE mode has no depthwise layer\), not 'dws'$"):
        twn(NETS["dws"], digits.x_train[:64], digits.y_train[:64], digits.x_calibration)


@needs_executor
def test_reduced_study_end_to_end(tmp_path, monkeypatch, capsys):
    """A few points of the grid through the CLI: records, cache resume, plots."""
    from nets import study
    out = tmp_path / "records.json"
    argv = ["--net", "mlp", "--methods", "float", "ptq", "binarynet", "twn",
            "--bits", "4", "--granularity", "channel", "--epochs-scale", "0.05",
            "--cache", str(tmp_path / "cache"), "--json", str(out), "--plots",
            str(tmp_path / "plots"), "--no-progress", "--graphs", str(tmp_path / "graphs")]
    assert study.main(argv) == 0
    records = json.loads(out.read_text())
    # Every point's deployed graph, saved and read back, has the record's integer accuracy.
    from nets import load_graph
    digits = load_digits()
    names = sorted(p.name for p in (tmp_path / "graphs").iterdir())
    assert names == sorted(["mlp_float_w32a32.npz", "mlp_ptq_w4a4_channel_minmax.npz",
                            "mlp_binarynet_w1a1.npz", "mlp_twn_w2a4.npz"])
    for r in records[1:]:
        graph = load_graph(tmp_path / "graphs" / f"{study.graph_name(r)}.npz")
        assert study.integer_accuracy(graph, digits.x_test, digits.y_test) == r["accuracy"]
    assert [r["method"] for r in records] == ["float", "ptq", "binarynet", "twn"]
    for r in records:
        for field in ("method", "net", "w_bits", "a_bits", "granularity", "float_accuracy",
                      "accuracy", "pe_mode", "cycles_per_image", "seed", "epochs"):
            assert field in r, field
        assert 0.0 <= r["accuracy"] <= 1.0
    modes = {r["method"]: r["pe_modes"] for r in records}
    assert modes["ptq"] == ["mac"] and modes["twn"] == ["bitserial"]
    assert modes["binarynet"] == ["bitserial", "xnor"]
    # A float network is far above chance even after a short training; so is int8-ish PTQ.
    assert records[0]["float_accuracy"] > 0.5
    assert set(records[0]["fgsm"]) == {str(e) for e in study.FGSM_EPS}
    assert (tmp_path / "plots" / "accuracy_vs_bits.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "accuracy_vs_cycles.png").stat().st_size > 1000
    # A rerun reads every record from the cache: nothing is trained or run again.
    monkeypatch.setattr(study, "run_point", lambda *a: pytest.fail("recomputed a point"))
    for path in (tmp_path / "graphs").iterdir():
        path.unlink()
    assert study.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "graphs").iterdir()) == names
    assert json.loads(out.read_text()) == records


def test_study_flags_are_checked(capsys):
    from nets import study
    with pytest.raises(SystemExit):
        study.main(["--bits", "9"])
    assert "--bits must be in 2..8, not 9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--methods", "magic"])
    assert "--methods must be among float, ptq" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^method must be one of float, .*, not 'x'$"):
        study.grid(["x"], ["mlp"], [4])


def test_cycles_follow_the_cycle_model():
    """Cycles per image: one GEMM per layer on its engine, from gemm_schedule."""
    from hw.config import ArrayConfig
    from nets.export import ActQuant, Plan, PlanLayer
    from nets.study import cycles_per_image
    from sim.engine_model import gemm_cycles
    net = NETS["mlp"]
    layers = tuple(PlanLayer(layer, "mac", np.zeros((layer.features, fan), np.int8),
                             np.ones(1, np.float32), 8, ActQuant(1.0, 0, 8),
                             bias=np.zeros(layer.features, np.int32))
                   for layer, fan in zip(net.layers, (64, 64, 64), strict=True))
    cycles, macs = cycles_per_image(Plan(net, ActQuant(1 / 255, -128, 8), layers))
    config = ArrayConfig(rows=8, cols=8, max_k=4096, max_n=4096, max_m=4096)
    assert cycles == 2 * gemm_cycles(config, 1, 64, 64) + gemm_cycles(config, 1, 64, 10)
    assert macs == 64 * 64 * 2 + 64 * 10
