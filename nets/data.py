"""scikit-learn's digits, split as ``../shared/models/README.md`` does (1437 train, 360 test)."""

import numpy as np

__all__ = ["CALIBRATION_IMAGES", "TEST_IMAGES", "TRAIN_IMAGES", "Digits", "load_digits",
           "quantize_images", "shifted"]

#: The split of the shared digits_cnn model: the first 1437 images train, the last 360 test.
TRAIN_IMAGES, TEST_IMAGES = 1437, 360
#: Images used to calibrate activation ranges: the first 500 training images, as the shared
#: model's converter did (its representative data set).
CALIBRATION_IMAGES = 500


class Digits:
    """The split data set: NHWC float32 images in [0, 1] (pixels / 16) and int labels.

    Members
    -------
    x_train : numpy.ndarray of float32, shape (1437, 8, 8, 1)
    y_train : numpy.ndarray of int64, shape (1437,)
    x_test : numpy.ndarray of float32, shape (360, 8, 8, 1)
    y_test : numpy.ndarray of int64, shape (360,)
    """

    def __init__(self, x_train, y_train, x_test, y_test):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test

    @property
    def x_calibration(self):
        """The first :data:`CALIBRATION_IMAGES` training images."""
        return self.x_train[:CALIBRATION_IMAGES]


def load_digits():
    """The digits split of ``../shared/models/README.md``: pixels / 16, first 1437 to train.

    ``sklearn.datasets.load_digits`` ships the 1797 images inside scikit-learn (no
    download); scikit-learn is imported here only, from the ``train`` extra.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 8, 8, 1)
    y = bunch.target.astype(np.int64)
    if x.shape[0] != TRAIN_IMAGES + TEST_IMAGES:
        raise ValueError(f"scikit-learn's digits must hold {TRAIN_IMAGES + TEST_IMAGES} images, "
                         f"not {x.shape[0]}")
    return Digits(x[:TRAIN_IMAGES], y[:TRAIN_IMAGES], x[TRAIN_IMAGES:], y[TRAIN_IMAGES:])


def shifted(x, y):
    """The images plus their four 1-pixel shifts (up, down, left, right; zero fill).

    The fixed augmentation the shared digits_cnn model was trained with: 5 times the data,
    no randomness.
    """
    x = np.asarray(x)
    out = [x]
    for axis, step in ((1, -1), (1, 1), (2, -1), (2, 1)):
        moved = np.roll(x, step, axis=axis)
        edge = [slice(None)] * x.ndim
        edge[axis] = slice(-1, None) if step < 0 else slice(0, 1)
        moved[tuple(edge)] = 0
        out.append(moved)
    return np.concatenate(out), np.tile(np.asarray(y), 5)


def quantize_images(graph, x):
    """Float images ``x`` in [0, 1] as the codes of ``graph``'s input tensor (its scale, zero
    point, ``Quant.bits`` and dtype): what the study's integer inference feeds the graph."""
    import golden

    t = graph.tensors[graph.inputs[0]]
    info = np.iinfo(t.dtype)
    bits = t.quant.bits or info.bits
    return golden.quantize(np.asarray(x, np.float32), t.quant.scale[0],
                           int(t.quant.zero_point[0]), bits, info.min < 0).astype(t.dtype)
