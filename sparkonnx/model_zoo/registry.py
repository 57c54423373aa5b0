"""The named image models: how each is built from keras.applications and what it produces."""

from __future__ import annotations

from dataclasses import dataclass

from sparkonnx.errors import InvalidParamError

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class ZooModel:
    """One keras.applications model and the facts sparkonnx needs to build and use it."""

    name: str
    constructor: str  # attribute of keras.applications
    preprocess_module: str  # keras.applications.<module>.preprocess_input
    input_size: tuple[int, int]  # (height, width) the network takes
    preprocessing: str  # 'caffe' | 'tf' | 'torch' | 'builtin' (inside the network)
    # layer whose output is the featurizer's vector, or '<pre-dropout>' (flattened input of the
    # last Dropout) / '<classifier-input>' (input of the 'predictions' layer) for auto-named ones
    feature_layer: str
    feature_width: int
    weights_file: str  # Keras' cache file name for the ImageNet weights (with top)
    weights_subdir: str  # folder of the download URL under KERAS_WEIGHTS_URL
    license: str
    constructor_kwargs: tuple[tuple[str, object], ...] = ()
    in_sparkdl: bool = False

    @property
    def weights_url(self) -> str:
        return f"{KERAS_WEIGHTS_URL}{self.weights_subdir}/{self.weights_file}"


_APACHE = "Apache-2.0 (Keras code); ImageNet weights: research / non-commercial terms of ImageNet"
_MIT = "MIT (Keras reference model); ImageNet weights: research / non-commercial terms of ImageNet"

MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "InceptionV3", "InceptionV3", "inception_v3", (299, 299), "tf", "avg_pool", 2048,
            "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "inception_v3", _APACHE,
            in_sparkdl=True,
        ),
        ZooModel(
            "Xception", "Xception", "xception", (299, 299), "tf", "avg_pool", 2048,
            "xception_weights_tf_dim_ordering_tf_kernels.h5", "xception", _MIT, in_sparkdl=True,
        ),
        ZooModel(
            "ResNet50", "ResNet50", "resnet50", (224, 224), "caffe", "avg_pool", 2048,
            "resnet50_weights_tf_dim_ordering_tf_kernels.h5", "resnet", _MIT, in_sparkdl=True,
        ),
        ZooModel(
            "VGG16", "VGG16", "vgg16", (224, 224), "caffe", "fc2", 4096,
            "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "vgg16", _APACHE + " (CC BY 4.0 model)",
            in_sparkdl=True,
        ),
        ZooModel(
            "VGG19", "VGG19", "vgg19", (224, 224), "caffe", "fc2", 4096,
            "vgg19_weights_tf_dim_ordering_tf_kernels.h5", "vgg19", _APACHE + " (CC BY 4.0 model)",
            in_sparkdl=True,
        ),
        ZooModel(
            "MobileNetV2", "MobileNetV2", "mobilenet_v2", (224, 224), "tf",
            "<classifier-input>", 1280,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", "mobilenet_v2", _APACHE,
        ),
        ZooModel(
            "MobileNetV3Small", "MobileNetV3Small", "mobilenet_v3", (224, 224), "builtin",
            "<pre-dropout>", 1024,
            "weights_mobilenet_v3_small_224_1.0_float.h5", "mobilenet_v3", _APACHE,
            constructor_kwargs=(("input_shape", (224, 224, 3)),),
        ),
        ZooModel(
            "MobileNetV3Large", "MobileNetV3Large", "mobilenet_v3", (224, 224), "builtin",
            "<pre-dropout>", 1280,
            "weights_mobilenet_v3_large_224_1.0_float.h5", "mobilenet_v3", _APACHE,
            constructor_kwargs=(("input_shape", (224, 224, 3)),),
        ),
        ZooModel(
            "EfficientNetB0", "EfficientNetB0", "efficientnet", (224, 224), "builtin", "avg_pool",
            1280, "efficientnetb0.h5", "efficientnet", _APACHE,
        ),
    )
}  # fmt: skip


def get_model(name: str) -> ZooModel:
    """The registry entry for `name` (case-insensitive); the error lists the known names."""
    for key, model in MODELS.items():
        if key.lower() == str(name).lower():
            return model
    raise InvalidParamError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
