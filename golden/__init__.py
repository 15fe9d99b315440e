"""qmac's golden model: integer-only inference, bit-exact with TensorFlow Lite / gemmlowp."""

from .binary import bitplane_gemm, pack_bits, pack_signs, unpack_bits, xnor_popcount_gemm
from .conv import (
    conv2d,
    conv_gemm_shape,
    conv_output_shape,
    depthwise_conv2d,
    im2col,
    quantized_conv2d,
    quantized_depthwise_conv2d,
    quantized_fully_connected,
    quantized_fully_connected_two_step,
)
from .fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    real_multiplier,
    requantize,
    requantize_fp64,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap,
)
from .gemm import gemm
from .lowbit import (
    batchnorm_thresholds,
    binarize,
    dorefa_quantize_activations,
    dorefa_quantize_weights,
    ternarize,
    threshold,
)
from .pool import average_pool2d, max_pool2d, mean_multiplier, quantized_mean
from .quant import choose_qparams, dequantize, qrange, quantize
from .softmax import quantized_softmax, softmax_parameters
from .tensor_ops import add_parameters, concatenate, pad, quantized_add, requantize_codes

__all__ = [
    "INT32_MAX", "INT32_MIN", "activation_range", "add_parameters", "average_pool2d",
    "batchnorm_thresholds", "binarize", "bitplane_gemm", "choose_qparams", "concatenate",
    "conv2d", "conv_gemm_shape", "conv_output_shape", "depthwise_conv2d", "dequantize",
    "dorefa_quantize_activations", "dorefa_quantize_weights", "gemm", "im2col", "max_pool2d",
    "mean_multiplier", "multiply_by_quantized_multiplier", "pack_bits", "pack_signs", "pad",
    "qrange", "quantize", "quantize_multiplier", "quantized_add", "quantized_conv2d",
    "quantized_depthwise_conv2d", "quantized_fully_connected",
    "quantized_fully_connected_two_step", "quantized_mean", "quantized_softmax",
    "real_multiplier", "requantize", "requantize_codes", "requantize_fp64", "round_half_away",
    "rounding_divide_by_pot", "saturating_rounding_doubling_high_mul", "softmax_parameters",
    "ternarize", "threshold", "unpack_bits", "wrap", "xnor_popcount_gemm",
]
