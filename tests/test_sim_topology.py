"""sim.topology: SCALE-Sim topology files, the bundled networks, and their GEMM shapes."""

import csv
import dataclasses
import pathlib
import re

import pytest

from golden import conv_gemm_shape, conv_output_shape
from sim.topology import Layer, list_networks, read_topology

NETWORKS_DIR = pathlib.Path(__file__).resolve().parents[1] / "sim" / "networks"
CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,")


def write(tmp_path, text, name="net.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def check_raises(path, lineno, message):
    where = re.escape(str(path)) + (f":{lineno}" if lineno else "")
    with pytest.raises(ValueError, match=rf"^{where}: {message}$"):
        read_topology(path)


# Bundled networks

def test_list_networks():
    assert list_networks() == ["bert_base", "mobilenet_v1", "mobilenet_v2", "resnet50"]


@pytest.mark.parametrize(("name", "count"), [
    ("resnet50", 54), ("mobilenet_v1", 28), ("mobilenet_v2", 53), ("bert_base", 30),
])
def test_layer_count(name, count):
    assert len(read_topology(name)) == count


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "mobilenet_v2", "bert_base"])
def test_bundled_file_names_its_source(name):
    first = (NETWORKS_DIR / f"{name}.csv").read_text().splitlines()[0]
    assert first.startswith("# source: ")


def test_name_and_path_read_the_same():
    assert read_topology("mobilenet_v2") == read_topology(NETWORKS_DIR / "mobilenet_v2.csv")
    assert read_topology("bert_base") == read_topology(str(NETWORKS_DIR / "bert_base.csv"))


def test_resnet50_is_the_shared_copy(shared_path):
    bundled = [line for line in (NETWORKS_DIR / "resnet50.csv").read_text().splitlines()
               if not line.startswith("#")]
    shared = shared_path("topologies/resnet50_scalesim.csv")
    assert bundled == shared.read_text().splitlines()


def independent_valid_macs(path):
    """Sum out_h * out_w * fh * fw * c * n over a conv CSV, read with the csv module."""
    total = 0
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    for row in rows[1:]:
        h, w, fh, fw, c, n, s = (int(v) for v in row[1:8])
        total += ((h - fh) // s + 1) * ((w - fw) // s + 1) * fh * fw * c * n
    return total


def test_resnet50_macs():
    layers = read_topology("resnet50")
    total = sum(layer.macs for layer in layers)
    assert total == independent_valid_macs(NETWORKS_DIR / "resnet50.csv")
    # SCALE-Sim's unpadded IFMAPs make every 3x3 and 7x7 conv "valid" (56 -> 54): 3.41 G,
    # below the ~4.1 G of the padded network.
    assert total == 3_409_810_112


@pytest.mark.parametrize(("name", "paper_macs"), [
    ("mobilenet_v1", 569e6),   # Howard et al. 2017, Table 1 caption / Table 8
    ("mobilenet_v2", 300e6),   # Sandler et al. 2018, Table 3
])
def test_mobilenet_macs_match_paper(name, paper_macs):
    total = sum(layer.macs for layer in read_topology(name))
    assert total == pytest.approx(paper_macs, rel=0.02)


def test_bert_base_macs():
    seq, hidden, heads, ffn = 128, 768, 12, 3072
    d_head = hidden // heads
    projections = 4 * seq * hidden * hidden
    attention = heads * (seq * d_head * seq + seq * seq * d_head)
    feed_forward = 2 * seq * hidden * ffn
    assert sum(layer.macs for layer in read_topology("bert_base")) == (
        projections + attention + feed_forward)


def test_bert_base_gemms():
    layers = {layer.name: layer for layer in read_topology("bert_base")}
    assert (layers["Q_proj"].m, layers["Q_proj"].k, layers["Q_proj"].n) == (128, 768, 768)
    assert (layers["QKT_h0"].m, layers["QKT_h0"].k, layers["QKT_h0"].n) == (128, 64, 128)
    assert (layers["AV_h11"].m, layers["AV_h11"].k, layers["AV_h11"].n) == (128, 128, 64)
    assert (layers["FFN1"].m, layers["FFN1"].k, layers["FFN1"].n) == (128, 768, 3072)
    assert (layers["FFN2"].m, layers["FFN2"].k, layers["FFN2"].n) == (128, 3072, 768)
    assert not any(layer.is_conv for layer in layers.values())


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "mobilenet_v2"])
def test_conv_gemm_matches_golden(name):
    for layer in read_topology(name):
        channels = 1 if layer.depthwise else layer.channels
        assert (layer.m, layer.k, layer.n) == conv_gemm_shape(
            1, layer.ifmap_h, layer.ifmap_w, channels, (layer.filter_h, layer.filter_w),
            layer.num_filters, layer.stride, "VALID"), layer.name


def test_random_conv_gemm_matches_golden(rng):
    for _ in range(200):
        fh, fw, s = (int(v) for v in rng.integers(1, 6, size=3))
        h, w = int(rng.integers(fh, 40)), int(rng.integers(fw, 40))
        c, n = (int(v) for v in rng.integers(1, 20, size=2))
        layer = Layer.from_conv("L", h, w, fh, fw, c, n, s)
        assert (layer.m, layer.k, layer.n) == conv_gemm_shape(1, h, w, c, (fh, fw), n, s,
                                                              "VALID")
        assert layer.macs == layer.m * layer.k * layer.n


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_mobilenet_shapes_chain(name):
    # Each conv's IFMAP is the previous output plus TensorFlow "SAME" padding, and its
    # channels are the previous output channels: the table was transcribed consistently.
    layers = read_topology(name)
    size, channels = 224, 3
    for layer in layers[:-1]:
        oh, ow, (pt, pb), (pl, pr) = conv_output_shape(size, size, layer.filter_h,
                                                       layer.stride, "SAME")
        assert (layer.ifmap_h, layer.ifmap_w) == (size + pt + pb, size + pl + pr), layer.name
        assert (layer.out_h, layer.out_w) == (oh, ow), layer.name
        assert layer.channels == channels, layer.name
        size = oh
        channels = layer.channels * layer.num_filters if layer.depthwise else layer.num_filters
    assert size == 7
    fc = layers[-1]
    assert (fc.m, fc.k, fc.n) == (1, channels, 1000)


def test_mobilenet_block_structure():
    v1 = read_topology("mobilenet_v1")
    assert sum(layer.depthwise for layer in v1) == 13
    v2 = read_topology("mobilenet_v2")
    assert sum(layer.depthwise for layer in v2) == 17
    assert sum(layer.name.endswith("_expand") for layer in v2) == 16
    assert sum(layer.name.endswith("_project") for layer in v2) == 17


# The Layer record

def test_depthwise_layer():
    layer = read_topology("mobilenet_v1")[1]
    assert layer.name == "DW1_DP"
    assert layer.depthwise
    assert (layer.m, layer.k, layer.n) == (112 * 112, 9, 1)
    assert layer.repeats == 32
    assert layer.macs == 32 * 112 * 112 * 9


def test_layer_is_frozen():
    layer = Layer.from_gemm("G", 2, 3, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.m = 5


def test_gemm_layer():
    layer = Layer.from_gemm("G", 2, 3, 4)
    assert (layer.m, layer.k, layer.n, layer.macs, layer.repeats) == (2, 3, 4, 24, 1)
    assert not layer.is_conv
    assert layer.out_h is None and layer.ifmap_h is None


def test_layer_bad_size():
    with pytest.raises(ValueError, match=r"^k must be a positive integer, not 0$"):
        Layer("G", 1, 0, 1)
    with pytest.raises(TypeError, match=r"^n must be a positive integer, not 2\.0$"):
        Layer("G", 1, 1, 2.0)


def test_layer_conv_checks():
    with pytest.raises(ValueError, match=r"^filter_h must be at most ifmap_h \(4\), not 5$"):
        Layer.from_conv("C", 4, 8, 5, 1, 1, 1)
    with pytest.raises(ValueError, match=r"^stride must be a positive integer, not 0$"):
        Layer.from_conv("C", 4, 8, 1, 1, 1, 1, stride=0)
    with pytest.raises(ValueError, match=r"^Layer 'C': \(m, k, n\) must be \(4, 2, 3\) for its "
                                         r"conv shape, not \(4, 2, 4\)$"):
        Layer("C", 4, 2, 4, 2, 2, 1, 1, 2, 3, 1)
    with pytest.raises(ValueError, match=r"^Layer 'G' is depthwise, so it needs its conv "
                                         r"shape$"):
        Layer("G", 1, 1, 1, depthwise=True)


# Reading files

def test_gemm_file_columns_are_m_n_k(tmp_path):
    path = write(tmp_path, "Layer, M, N, K,\nG0, 5, 7, 3,\nG1,2,3,4\n")
    g0, g1 = read_topology(path)
    assert (g0.name, g0.m, g0.k, g0.n) == ("G0", 5, 3, 7)
    assert (g1.m, g1.k, g1.n) == (2, 4, 3)


def test_tolerant_forms(tmp_path):
    # Trailing commas or none, spaces, blank and comma-only lines, "#" comments anywhere
    # (SCALE-Sim's mobilnet_paper.csv ends depthwise rows with ",#dw").
    path = write(tmp_path, "# a comment\n\n" + CONV_HEADER.upper() + ",,\n"
                 ",,,,,,,,\n"
                 " Conv1 , 9, 9, 3, 3, 2, 4, 2,\n"
                 "Conv2,5,5,3,3,1,1,1,#dw\n"
                 "Conv3,5,5,1,1,4,4,1  # no trailing comma\n")
    layers = read_topology(path)
    assert [layer.name for layer in layers] == ["Conv1", "Conv2", "Conv3"]
    assert (layers[0].m, layers[0].k, layers[0].n) == (16, 18, 4)
    assert not layers[1].depthwise


def test_dp_name_marks_depthwise(tmp_path):
    path = write(tmp_path, CONV_HEADER + "\nConv2_DP,6,6,3,3,8,1,1,\n")
    (layer,) = read_topology(path)
    assert layer.depthwise
    assert (layer.m, layer.k, layer.n, layer.repeats) == (16, 9, 1, 8)


def test_unknown_network():
    with pytest.raises(ValueError, match=r"^Network must be one of bert_base, mobilenet_v1, "
                                         r"mobilenet_v2, resnet50 or a path to a CSV file, "
                                         r"not 'resnet51'$"):
        read_topology("resnet51")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_topology(tmp_path / "absent.csv")


@pytest.mark.parametrize(("row", "field", "value"), [
    ("Conv1,224,abc,3,3,3,32,2,", "IFMAP Width", "'abc'"),
    ("Conv1,224,224,3,3,3,32,0,", "Strides", "'0'"),
    ("Conv1,224,224,3,3,-3,32,1,", "Channels", "'-3'"),
    ("Conv1,224,224,3.5,3,3,32,1,", "Filter Height", "'3.5'"),
    ("Conv1,224,224,3,3,3,,1,", "Num Filter", "''"),
])
def test_bad_conv_field(tmp_path, row, field, value):
    path = write(tmp_path, f"{CONV_HEADER}\nConv0,4,4,1,1,1,1,1,\n{row}\n")
    check_raises(path, 3, f"{field} must be a positive integer, not {re.escape(value)}")


def test_bad_gemm_field(tmp_path):
    path = write(tmp_path, "# gemm\nLayer, M, N, K,\nG0, 5, 7, x3,\n")
    check_raises(path, 3, "K must be a positive integer, not 'x3'")


def test_filter_larger_than_ifmap(tmp_path):
    path = write(tmp_path, f"{CONV_HEADER}\nConv1,7,2,3,3,1,1,1,\n")
    check_raises(path, 2, r"Filter Width must be at most IFMAP Width \(2\), not 3")


def test_wrong_field_count(tmp_path):
    path = write(tmp_path, f"{CONV_HEADER}\nConv1,7,7,3,3,1,1,\n")
    check_raises(path, 2, r"a conv row must have 8 fields \(Layer name, IFMAP Height, IFMAP "
                          r"Width, Filter Height, Filter Width, Channels, Num Filter, "
                          r"Strides\), not 7")
    path = write(tmp_path, "Layer, M, N, K,\nG0, 5, 7, 3, 1:2,\n", "gemm.csv")
    check_raises(path, 2, r"a gemm row must have 4 fields \(Layer, M, N, K\), not 5")


def test_empty_layer_name(tmp_path):
    path = write(tmp_path, f"{CONV_HEADER}\n ,7,7,3,3,1,1,1,\n")
    check_raises(path, 2, "Layer name must not be empty")


def test_bad_header(tmp_path):
    path = write(tmp_path, "# comment\nLayer, M, K, N,\nG0, 5, 7, 3,\n")
    check_raises(path, 2, r"header must be SCALE-Sim's conv header Layer name, IFMAP Height, "
                          r"IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                          r"Strides or GEMM header Layer, M, N, K, not Layer, M, K, N")


def test_no_header(tmp_path):
    path = write(tmp_path, "# only a comment\n\n")
    check_raises(path, None, r"no header line: expected SCALE-Sim's conv header Layer name, "
                             r"IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                             r"Channels, Num Filter, Strides or GEMM header Layer, M, N, K")


def test_no_layers(tmp_path):
    path = write(tmp_path, CONV_HEADER + "\n# nothing\n")
    check_raises(path, None, "no layers after the header")
