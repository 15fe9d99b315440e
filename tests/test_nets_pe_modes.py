"""Trained networks of every PE mode on the engine: lowering, derived engines, RTL == golden.

The networks are the study's CNN deployed four ways (tests/support/lowbit_nets.py made them;
tests/data/nets/ holds them, written by nets.save_graph): PTQ int8 (mac, 8 bits), PTQ with
4-bit weights, activations and input (mac, 4 bits), BinaryNet (a bit-serial first layer
with thresholds, then xnor) and DoReFa-Net 2-bit (bit-serial). The RTL tests run a few
digits test images through ``nets.run`` on small derived engines (4x4), each engine built
once, and compare outputs with golden's integer inference of the same graph and every
layer's RTL cycles with the cycle model's.
"""

import json
import re

import numpy as np
import pytest

import golden
from hw.config import ArrayConfig
from nets import engines_for, load_graph, save_graph
from nets.lower import LoweringError, engine_layer_output, plan_network
from nets.run import main, run_network
from tests.support.lowbit_nets import default_dir
from tests.support.nets import GraphBuilder, chain_case

STEMS = ("mac8", "mac4", "xnor", "bitserial")
BASE = ArrayConfig(rows=4, cols=4, max_k=512, max_n=64, max_m=64)


@pytest.fixture(scope="module")
def nets_dir():
    return default_dir()


@pytest.fixture(scope="module")
def graphs(nets_dir):
    return {stem: load_graph(nets_dir / f"{stem}.npz") for stem in STEMS}


@pytest.fixture(scope="module")
def images():
    """Digits test images in [0, 1] and labels (the split of nets.data)."""
    pytest.importorskip("sklearn")
    from nets.data import load_digits
    d = load_digits()
    return d.x_test, d.y_test


def _inputs(graph, x):
    from nets.data import quantize_images
    return quantize_images(graph, x)


def _assert_identical(got, want):
    assert (got.name, got.inputs, got.outputs) == (want.name, want.inputs, want.outputs)
    assert len(got.tensors) == len(want.tensors)
    for a, b in zip(got.tensors, want.tensors, strict=True):
        assert (a.index, a.name, a.shape, a.dtype) == (b.index, b.name, b.shape, b.dtype)
        assert (a.quant is None) == (b.quant is None)
        if a.quant is not None:
            assert a.quant.scale.tobytes() == b.quant.scale.tobytes()
            assert np.array_equal(a.quant.zero_point, b.quant.zero_point)
            assert (a.quant.axis, a.quant.bits) == (b.quant.axis, b.quant.bits)
        assert (a.data is None) == (b.data is None)
        if a.data is not None:
            assert a.data.dtype == b.data.dtype and np.array_equal(a.data, b.data)
    for a, b in zip(got.ops, want.ops, strict=True):
        assert (a.index, a.kind, a.inputs, a.outputs, a.options) == \
            (b.index, b.kind, b.inputs, b.outputs, b.options)


# --- graph files ----------------------------------------------------------------------------

def test_graph_files_round_trip(rng, tmp_path, graphs):
    """Random TFLite-op chains (pads, means, concatenations: nested tuples in the options) and
    the committed low-bit graphs are read back identical, and run identically."""
    for i in range(4):
        builder = GraphBuilder()
        builder.output(chain_case(rng, builder))
        graph = builder.graph(f"chain{i}")
        save_graph(graph, tmp_path / "g.npz")
        _assert_identical(load_graph(tmp_path / "g.npz"), graph)
    for stem, graph in graphs.items():
        save_graph(graph, tmp_path / f"{stem}.npz")
        again = load_graph(tmp_path / f"{stem}.npz")
        _assert_identical(again, graph)
        x = np.zeros((1,) + graph.tensors[graph.inputs[0]].shape[1:],
                     graph.tensors[graph.inputs[0]].dtype)
        assert np.array_equal(again.run(x), graph.run(x))


def test_bad_graph_files_are_refused(tmp_path):
    from nets import ModelError
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ModelError, match=r"is not a qmac graph file: it has no 'graph' entry "
                                         r"\(it has x\)$"):
        load_graph(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "none.npz")


def test_committed_networks_are_the_trained_ones(graphs, images, nets_dir):
    """Golden's integer accuracy of each loaded graph is the one the study measured on the
    graph in memory when it deployed it, and far above chance: trained networks."""
    from nets.study import integer_accuracy
    manifest = json.loads((nets_dir / "manifest.json").read_text())
    x, y = images
    for stem, graph in graphs.items():
        accuracy = integer_accuracy(graph, x, y)
        assert accuracy == manifest[stem]["accuracy"], stem
        assert accuracy > 0.8, stem
    kinds = {stem: [op.kind for op in g.ops if op.kind != "RESHAPE"] for stem, g in graphs.items()}
    assert kinds["mac8"] == kinds["mac4"] == ["CONV_2D"] * 3 + ["FULLY_CONNECTED"]
    assert kinds["xnor"] == ["QMAC_BITSERIAL_CONV_2D", "QMAC_XNOR_CONV_2D", "QMAC_XNOR_CONV_2D",
                             "QMAC_XNOR_FULLY_CONNECTED"]
    assert kinds["bitserial"] == ["QMAC_BITSERIAL_CONV_2D"] * 3 + [
        "QMAC_BITSERIAL_FULLY_CONNECTED"]


# --- engines ----------------------------------------------------------------------------------

def _fields(config):
    return (config.pe_mode, config.a_bits, config.a_signed, config.w_bits, config.w_signed,
            config.threshold, config.requant, config.out_bits, config.out_signed)


def test_engines_follow_the_layers(graphs):
    """One engine per PE mode and output stage, widths that hold the layers' codes (read
    here from the graph's tensors), the base's shape kept."""
    base = BASE.replace(dataflow="os", rows=3, cols=5)
    for graph in graphs.values():
        engines = engines_for(graph, base)
        assert sorted(engines) == [0, 1, 2, 4]
        for config in engines.values():
            assert (config.rows, config.cols, config.dataflow, config.max_k, config.max_n) == \
                (3, 5, "os", 512, 64)
            assert config.acc_bits == 32
    bits = {stem: [g.tensors[op.inputs[1]].quant.bits for op in g.ops if op.kind != "RESHAPE"]
            for stem, g in graphs.items()}
    assert bits["mac8"] == [None] * 4 and bits["mac4"] == [4] * 4
    (mac8,) = set(engines_for(graphs["mac8"], base).values())
    assert _fields(mac8) == ("mac", 8, True, 8, True, False, True, 8, True)
    (mac4,) = set(engines_for(graphs["mac4"], base).values())
    assert _fields(mac4) == ("mac", 4, True, 4, True, False, True, 8, True)
    xnor = engines_for(graphs["xnor"], base)
    first = graphs["xnor"].ops[0].options
    assert _fields(xnor[0]) == ("bitserial", first["a_bits"], False, first["w_bits"], True,
                                True, False, 8, True)
    assert xnor[1] is xnor[2] and _fields(xnor[1])[:7] == ("xnor", 1, True, 1, True, True,
                                                            False)
    assert _fields(xnor[4]) == ("xnor", 1, True, 1, True, False, True, 8, True)
    assert xnor[1].pack == xnor[0].pack == 8  # a mac base: the packed modes' default
    bs_ops = [op for op in graphs["bitserial"].ops if op.kind.startswith("QMAC")]
    (bs,) = set(engines_for(graphs["bitserial"], base).values())
    assert (bs.pe_mode, bs.a_bits, bs.a_signed, bs.w_bits, bs.w_signed) == (
        "bitserial", max(op.options["a_bits"] for op in bs_ops), False,
        max(op.options["w_bits"] for op in bs_ops), True)
    # A packed base keeps its pack; a raw base gives raw engines (thresholds stay).
    packed = engines_for(graphs["xnor"], ArrayConfig(pe_mode="xnor", pack=4, requant=False))
    assert {c.pack for c in packed.values()} == {4}
    assert [(c.threshold, c.requant) for c in packed.values()] == [(True, False)] * 3 + [
        (False, False)]


def test_an_int8_tflite_model_keeps_its_engine(shared_path):
    from nets import load_tflite
    graph = load_tflite(shared_path("models/digits_cnn.tflite"))
    base = ArrayConfig(rows=8, cols=8, max_k=288)
    assert set(engines_for(graph, base).values()) == {base}


@pytest.mark.parametrize("stem", STEMS)
def test_engine_layers_equal_golden_on_the_model(graphs, images, stem):
    """The engine's arithmetic of every layer (on its derived engine, requantizing and raw)
    gives golden's outputs, except where the requantizer's two-step rounding meets an int8
    FULLY_CONNECTED (golden rounds it once, in double, as TFLite): those elements are
    counted independently here."""
    graph = graphs[stem]
    x = _inputs(graph, images[0][:24])
    reference, values = graph.run(x, keep_all=True)
    raw = run_network(graph, BASE.replace(requant=False), x, derive_engines=True)
    assert np.array_equal(raw.outputs, reference)
    assert all(r.tflite_mismatches == 0 for r in raw.layers if r.on_engine)
    run = run_network(graph, BASE, x, derive_engines=True)
    for r in run.layers:
        if not r.on_engine:
            continue
        op = graph.ops[r.index]
        expected = 0
        if op.kind == "FULLY_CONNECTED":
            x_t, w_t, y_t = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1],
                                                         op.outputs[0]))
            two_step = golden.quantized_fully_connected_two_step(
                values[op.inputs[0]].reshape(len(x), -1), w_t.data,
                graph.tensors[op.inputs[2]].data, x_scale=x_t.quant.scale[0],
                x_zero_point=int(x_t.quant.zero_point[0]), w_scale=w_t.quant.scale,
                w_zero_point=0, y_scale=y_t.quant.scale[0],
                y_zero_point=int(y_t.quant.zero_point[0]))
            expected = int(np.count_nonzero(two_step != values[op.outputs[0]]))
        assert r.tflite_mismatches == expected, (stem, r.index)
    if stem != "mac4":
        assert np.array_equal(run.outputs, reference)


def test_threshold_layers_give_the_codes_of_their_bits(graphs, images):
    """BinaryNet's hidden layers: the engine's bits (acc >= T) XOR invert, computed here from
    the ±1 operands by plain integer products, become the ±1 codes golden holds."""
    graph = graphs["xnor"]
    x = _inputs(graph, images[0][:3])
    _, values = graph.run(x, keep_all=True)
    plans = plan_network(graph, engines_for(graph, BASE), batch=3)
    plan = plans[1]
    op = graph.ops[1]
    (patches,) = plan.operands(values[op.inputs[0]])
    assert set(np.unique(patches)) <= {-1, 1}
    acc = patches @ plan.weights[0]
    bits = (acc >= plan.thresholds) ^ (plan.invert == 1)
    expected = np.where(bits, 1, -1).reshape(values[op.outputs[0]].shape)
    assert np.array_equal(expected, values[op.outputs[0]])
    assert np.array_equal(engine_layer_output(plan, values[op.inputs[0]]), expected)


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("stem", "fields", "message"), [
    ("xnor", {}, r"op 0 \(QMAC_BITSERIAL_CONV_2D\) needs an engine with pe_mode 'bitserial' "
                 r"\(not 'mac'\), threshold outputs \(not a requantizer\); build it with "
                 r"--pe-mode bitserial --a-bits 8 --w-bits 2 --no-a-signed --threshold, or "
                 r"derive each layer's engine \(nets.engines_for, nets.run --derive-engines\)"),
    ("mac4", {"a_bits": 2, "w_bits": 3, "out_bits": 2},
     r"op 0 \(CONV_2D\) needs an engine with activations in -8..7 \(not 2-bit signed\), "
     r"weights in -8..7 \(not 3-bit signed\), outputs in {lo}..7 \(not 2-bit signed\); "
     r"build it with --a-bits 4 --w-bits 4 {out_flags}, or derive"),
    ("bitserial", {"pe_mode": "bitserial", "a_bits": 8, "w_bits": 8},
     r"op 0 \(QMAC_BITSERIAL_CONV_2D\) needs an engine with activations in 0..255 \(not "
     r"8-bit signed\); build it with --a-bits 8 --no-a-signed, or derive"),
    ("xnor", {"pe_mode": "xnor", "a_bits": 1, "w_bits": 1, "threshold": True,
              "requant": False, "acc_bits": 24},
     r"op 0 \(QMAC_BITSERIAL_CONV_2D\) needs an engine with pe_mode 'bitserial' \(not "
     r"'xnor'\), acc_bits 32 \(not 24\); build it with --pe-mode bitserial --a-bits 8 "
     r"--w-bits 2 --no-a-signed --acc-bits 32, or derive"),
])
def test_engines_that_cannot_run_a_layer_are_refused_in_one_line(graphs, stem, fields, message):
    graph = graphs[stem]
    if stem == "mac4":
        # The refusal's numbers come from the graph: 4-bit signed codes everywhere.
        op = graph.ops[0]
        assert [graph.tensors[i].code_range for i in (op.inputs[0], op.inputs[1])] == [
            (-8, 7)] * 2
        # A ReLU on 4-bit codes: zero point..7, held by 4 signed bits or fewer unsigned ones.
        assert op.options["activation"] == "relu"
        lo = max(-8, int(graph.tensors[op.outputs[0]].quant.zero_point[0]))
        out_flags = "--out-bits 4" if lo < 0 else (
            f"--out-bits {max(2, (7).bit_length())} --no-out-signed")
        message = message.format(lo=lo, out_flags=out_flags)
    with pytest.raises(LoweringError) as info:
        plan_network(graph, BASE.replace(**fields))
    text = str(info.value)
    assert "\n" not in text
    assert re.match(rf"^{message}", text), text


def test_the_cli_runs_a_saved_low_bit_network(nets_dir, images, capsys, tmp_path):
    graph_path = nets_dir / "xnor.npz"
    engine = ["--rows", "4", "--cols", "4", "--max-k", "512"]
    with pytest.raises(SystemExit) as info:
        main([str(graph_path), *engine])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert re.match(r"^python -m nets\.run: error: op 0 \(QMAC_BITSERIAL_CONV_2D\) needs an "
                    r"engine with pe_mode 'bitserial'.*--derive-engines\)$", err), err
    report = tmp_path / "run.json"
    assert main([str(graph_path), *engine, "--derive-engines", "--digits", "--images", "5",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(report.read_text())
    assert len(doc["engines"]) == 3
    assert out.startswith("engines: ")
    graph = load_graph(graph_path)
    x, y = images
    logits = graph.run(_inputs(graph, x[:5]))
    assert doc["total"]["correct"] == int(np.count_nonzero(np.argmax(logits, 1) == y[:5]))
    assert all(r["match"] for r in doc["layers"] if r["m"] is not None)


# --- on the RTL -------------------------------------------------------------------------------

#: (network, simulator, engine flags, images): one network of each PE mode on Verilator;
#: Icarus (slower) runs BinaryNet's three engines output-stationary on one image. The
#: 4-bit network runs on a raw engine: its logits' multipliers are near 1, where the
#: requantizer's two-step rounding differs from golden's (TFLite's) double-precision
#: FULLY_CONNECTED in many elements (see the model test above).
RTL_RUNS = [
    ("mac8", "verilator", {}, 2),
    ("mac4", "verilator", {"requant": False}, 2),
    ("xnor", "verilator", {}, 2),
    ("bitserial", "verilator", {}, 2),
    ("xnor", "icarus", {"dataflow": "os"}, 1),
]


@pytest.mark.rtl
@pytest.mark.parametrize(("stem", "sim", "fields", "count"), RTL_RUNS,
                         ids=[f"{s}-{sim}" for s, sim, _, _ in RTL_RUNS])
def test_a_network_of_each_pe_mode_on_the_rtl(graphs, images, seed, stem, sim, fields, count):
    graph = graphs[stem]
    x = _inputs(graph, images[0][:count])
    run = run_network(graph, BASE.replace(**fields), x, sim=sim, rtl_images=count, seed=seed,
                      derive_engines=True)
    assert run.rtl_errors == []
    assert run.rtl_images == count
    engine = [r for r in run.layers if r.on_engine]
    assert len(engine) == 4
    for r in engine:
        assert r.rtl_match is True, r
        assert r.rtl_cycles == r.model_cycles, r
        assert r.tflite_mismatches == 0, r
    assert np.array_equal(run.outputs, graph.run(x))
    modes = {c.pe_mode for c in run.engines.values()}
    assert modes == {"mac8": {"mac"}, "mac4": {"mac"}, "xnor": {"bitserial", "xnor"},
                     "bitserial": {"bitserial"}}[stem]
