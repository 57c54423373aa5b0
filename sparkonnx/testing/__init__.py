"""Small ONNX models and images built in code (no download, no TensorFlow): tests, benchmarks.

`models`: MLPs, CNNs, image and tensor models and real-photo crops; `text`: a BERT-shaped
tokenizer and encoder; `big`: a model over protobuf's 2 GiB limit. Every name is here too.
"""

from __future__ import annotations

from sparkonnx.testing.big import (
    BIG_MATMUL_NONZEROS,
    big_matmul_reference,
    save_with_external_data,
    write_big_matmul,
)
from sparkonnx.testing.models import (
    CLASSIFIER_CLASSES,
    CLASSIFIER_SIZE,
    OPSET,
    as_nchw,
    image_identity,
    linear_model,
    linear_reference,
    mlp,
    photo_crops,
    scale_model,
    small_classifier,
    smooth_images,
    tiny_cnn,
    tiny_cnn_nhwc,
    two_in_two_out,
    write_images,
)
from sparkonnx.testing.precision import GATE_ONLY, gate_only
from sparkonnx.testing.text import (
    text_classifier,
    text_encoder,
    word_tokenizer,
)

__all__ = [
    "BIG_MATMUL_NONZEROS",
    "CLASSIFIER_CLASSES",
    "CLASSIFIER_SIZE",
    "GATE_ONLY",
    "OPSET",
    "as_nchw",
    "big_matmul_reference",
    "gate_only",
    "image_identity",
    "linear_model",
    "linear_reference",
    "mlp",
    "photo_crops",
    "save_with_external_data",
    "scale_model",
    "small_classifier",
    "smooth_images",
    "text_classifier",
    "text_encoder",
    "tiny_cnn",
    "tiny_cnn_nhwc",
    "two_in_two_out",
    "word_tokenizer",
    "write_big_matmul",
    "write_images",
]
