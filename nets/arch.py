"""The three digits networks as plain data (layers in order); no JAX, so export can read them."""

from dataclasses import dataclass

__all__ = ["NETS", "Layer", "Net", "input_features"]


@dataclass(frozen=True)
class Layer:
    """One linear layer (conv, depthwise conv or dense), optionally followed by BN and ReLU.

    Members
    -------
    kind : "conv", "depthwise" or "dense"
    features : int
        Output channels (a depthwise layer keeps its input's channels: multiplier 1).
    kernel, stride : int
        Square kernel side and stride (convolutions).
    padding : "SAME" or "VALID"
    bn : bool
        Batch normalization after the linear step (then the layer has no bias).
    relu : bool
        ReLU after it (the output layer has none).
    """

    kind: str
    features: int
    kernel: int = 1
    stride: int = 1
    padding: str = "SAME"
    bn: bool = True
    relu: bool = True


@dataclass(frozen=True)
class Net:
    """A network: its name and its layers in order (a flatten precedes the first dense)."""

    name: str
    layers: tuple

    def out_channels(self):
        """Output channels of each layer (depthwise layers keep their input's)."""
        channels, out = 1, []
        for layer in self.layers:
            channels = channels if layer.kind == "depthwise" else layer.features
            out.append(channels)
        return out


NETS = {
    "mlp": Net("mlp", (Layer("dense", 64), Layer("dense", 64),
                       Layer("dense", 10, bn=False, relu=False))),
    "cnn": Net("cnn", (Layer("conv", 16, 3), Layer("conv", 32, 3, 2),
                       Layer("conv", 32, 3, 1, "VALID"),
                       Layer("dense", 10, bn=False, relu=False))),
    "dws": Net("dws", (Layer("conv", 16, 3), Layer("depthwise", 16, 3),
                       Layer("conv", 32, 1), Layer("depthwise", 32, 3, 2),
                       Layer("conv", 64, 1), Layer("dense", 10, bn=False, relu=False))),
}


def input_features(net, shape=(8, 8, 1)):
    """Input channels (or flattened features for dense layers) of each layer."""
    h, w, c = shape
    fan = []
    for layer in net.layers:
        if layer.kind == "dense":
            fan.append(h * w * c)
            h = w = 1
            c = layer.features
            continue
        fan.append(c)
        if layer.padding == "SAME":
            h, w = -(-h // layer.stride), -(-w // layer.stride)
        else:
            h = (h - layer.kernel) // layer.stride + 1
            w = (w - layer.kernel) // layer.stride + 1
        c = c if layer.kind == "depthwise" else layer.features
    return fan
