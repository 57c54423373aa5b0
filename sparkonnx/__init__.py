"""sparkonnx: deep-learning models at scale on Apache Spark through ONNX Runtime.

Public names are imported lazily (PEP 562): ``import sparkonnx`` imports neither TensorFlow
nor pyspark's JVM side, so executors and light clients stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparkonnx._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # the error family: every error below is a SparkOnnxError
    "SparkOnnxError": "sparkonnx.errors",
    "InvalidParamError": "sparkonnx.errors",
    # engine (executor side; no pyspark, no tensorflow)
    "OnnxModel": "sparkonnx.engine.model",
    "TensorSpec": "sparkonnx.engine.model",
    "InvalidModelError": "sparkonnx.engine.model",
    "ModelNotRunnableError": "sparkonnx.engine.runnable",
    "UnknownTensorError": "sparkonnx.engine.model",
    "DeviceError": "sparkonnx.engine.providers",
    "TensorConversionError": "sparkonnx.engine.tensors",
    "ImageDecodeError": "sparkonnx.engine.images",
    # converters (driver only; TensorFlow imported lazily inside)
    "convert": "sparkonnx.converters.api",
    "from_keras": "sparkonnx.converters.api",
    "from_saved_model": "sparkonnx.converters.api",
    "from_function": "sparkonnx.converters.api",
    "from_graph_def": "sparkonnx.converters.api",
    "from_checkpoint": "sparkonnx.converters.api",
    "ConversionOptions": "sparkonnx.converters.options",
    "ConversionResult": "sparkonnx.converters.result",
    "ParityReport": "sparkonnx.converters.result",
    "ConversionError": "sparkonnx.converters.errors",
    "ParityError": "sparkonnx.converters.errors",
    "UnsupportedOpsError": "sparkonnx.converters.errors",
    "UnsafeModelError": "sparkonnx.converters.errors",
    "UnsupportedSourceError": "sparkonnx.converters.errors",
    "SignatureError": "sparkonnx.converters.errors",
    "OnnxRuntimeLoadError": "sparkonnx.converters.errors",
    "CalibrationError": "sparkonnx.converters.calibration",
    "inspect_model": "sparkonnx.converters.inspect",
    "quantize": "sparkonnx.converters.quantize",
    "QuantizationResult": "sparkonnx.converters.quantize",
    "GateError": "sparkonnx.converters.gate",
    "GateTolerance": "sparkonnx.converters.gate",
    "Int8SpeedError": "sparkonnx.converters.int8_search",
    "CalibrationSet": "sparkonnx.converters.calibration",
    "ZooWeightsError": "sparkonnx.model_zoo.build",
    # spark_api
    "ONNXTransformer": "sparkonnx.spark_api.transformers.onnx_transformer",
    "TextEmbedder": "sparkonnx.spark_api.transformers.text_transformers",
    "TextTransformer": "sparkonnx.spark_api.transformers.text_transformers",
    "DeepImageFeaturizer": "sparkonnx.spark_api.transformers.zoo_transformers",
    "DeepImagePredictor": "sparkonnx.spark_api.transformers.zoo_transformers",
    "TFInputGraph": "sparkonnx.spark_api.transformers.tf_input_graph",
    "TFTransformer": "sparkonnx.spark_api.transformers.tf_transformer",
    "KerasTransformer": "sparkonnx.spark_api.transformers.keras_transformer",
    "register_udf": "sparkonnx.spark_api.sql",
    "score_parquet": "sparkonnx.spark_api.transformers.parquet_scoring",
    "ParquetTableError": "sparkonnx.spark_api.runtime.parquet_files",
    "ZooImportError": "sparkonnx.model_zoo.transfer",
    "TextModelError": "sparkonnx.spark_api.runtime.text",
    "register_data_source": "sparkonnx.spark_api.transformers.parquet_scoring",
    "registerKerasImageUDF": "sparkonnx.spark_api.sql",
    "ImageTransformer": "sparkonnx.spark_api.transformers.image_transformer",
    "TFImageTransformer": "sparkonnx.spark_api.transformers.tf_image_transformer",
    "KerasImageFileTransformer": "sparkonnx.spark_api.transformers.keras_image_transformer",
    "KerasEstimator": "sparkonnx.spark_api.training.keras_estimator",
    "KerasEstimatorModel": "sparkonnx.spark_api.training.keras_estimator",
    "KerasImageFileEstimator": "sparkonnx.spark_api.training.keras_image_estimator",
    "KerasImageFileModel": "sparkonnx.spark_api.training.keras_image_estimator",
    "ImageLoadingError": "sparkonnx.spark_api.training.keras_image_estimator",
    "TrainingSummary": "sparkonnx.spark_api.training.keras_estimator",
    "TrainingDataTooLargeError": "sparkonnx.spark_api.training.data",
    "TrainingDependencyError": "sparkonnx.spark_api.training.job",
    "KerasTrainingError": "sparkonnx.spark_api.training.job",
    "read_images": "sparkonnx.spark_api.images.reading",
    "readImagesWithCustomFn": "sparkonnx.spark_api.images.reading",
    "ImageSchema": "sparkonnx.spark_api.images.reading",
    "read_image_stream": "sparkonnx.spark_api.images.streams",
    "decode_images": "sparkonnx.spark_api.images.streams",
    "imageStructToArray": "sparkonnx.spark_api.images.structs",
    "imageArrayToStruct": "sparkonnx.spark_api.images.structs",
    "imageStructToPIL": "sparkonnx.spark_api.images.structs",
    "register_image_loader": "sparkonnx.spark_api.runtime.code_names",
    "UntrustedCodeError": "sparkonnx.spark_api.runtime.code_names",
    "InvalidStageError": "sparkonnx.spark_api.persistence",
    # diagnostics
    "doctor": "sparkonnx.diagnostics.doctor",
    "DoctorReport": "sparkonnx.diagnostics.report",
    "ExecutorProbeError": "sparkonnx.spark_api.runtime.executor_facts",
    # models kept on disk (over 2 GiB)
    "ModelOnDiskError": "sparkonnx.engine.model",
    "ModelFilesError": "sparkonnx.engine.model_files",
    "ModelCacheError": "sparkonnx.engine.model_cache",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from sparkonnx.converters.api import (
        convert,
        from_checkpoint,
        from_function,
        from_graph_def,
        from_keras,
        from_saved_model,
    )
    from sparkonnx.converters.calibration import CalibrationError, CalibrationSet
    from sparkonnx.converters.errors import (
        ConversionError,
        OnnxRuntimeLoadError,
        ParityError,
        SignatureError,
        UnsafeModelError,
        UnsupportedOpsError,
        UnsupportedSourceError,
    )
    from sparkonnx.converters.gate import GateError, GateTolerance
    from sparkonnx.converters.inspect import inspect_model
    from sparkonnx.converters.int8_search import Int8SpeedError
    from sparkonnx.converters.options import ConversionOptions
    from sparkonnx.converters.quantize import QuantizationResult, quantize
    from sparkonnx.converters.result import ConversionResult, ParityReport
    from sparkonnx.diagnostics.doctor import doctor
    from sparkonnx.diagnostics.report import DoctorReport
    from sparkonnx.engine.images import ImageDecodeError
    from sparkonnx.engine.model import (
        InvalidModelError,
        ModelOnDiskError,
        OnnxModel,
        TensorSpec,
        UnknownTensorError,
    )
    from sparkonnx.engine.model_cache import ModelCacheError
    from sparkonnx.engine.model_files import ModelFilesError
    from sparkonnx.engine.providers import DeviceError
    from sparkonnx.engine.runnable import ModelNotRunnableError
    from sparkonnx.engine.tensors import TensorConversionError
    from sparkonnx.errors import InvalidParamError, SparkOnnxError
    from sparkonnx.model_zoo.build import ZooWeightsError
    from sparkonnx.model_zoo.transfer import ZooImportError
    from sparkonnx.spark_api.images.reading import ImageSchema, read_images, readImagesWithCustomFn
    from sparkonnx.spark_api.images.streams import decode_images, read_image_stream
    from sparkonnx.spark_api.images.structs import (
        imageArrayToStruct,
        imageStructToArray,
        imageStructToPIL,
    )
    from sparkonnx.spark_api.persistence import InvalidStageError
    from sparkonnx.spark_api.runtime.code_names import UntrustedCodeError, register_image_loader
    from sparkonnx.spark_api.runtime.executor_facts import ExecutorProbeError
    from sparkonnx.spark_api.runtime.parquet_files import ParquetTableError
    from sparkonnx.spark_api.runtime.text import TextModelError
    from sparkonnx.spark_api.sql import register_udf, registerKerasImageUDF
    from sparkonnx.spark_api.training.data import TrainingDataTooLargeError
    from sparkonnx.spark_api.training.job import KerasTrainingError, TrainingDependencyError
    from sparkonnx.spark_api.training.keras_estimator import (
        KerasEstimator,
        KerasEstimatorModel,
        TrainingSummary,
    )
    from sparkonnx.spark_api.training.keras_image_estimator import (
        ImageLoadingError,
        KerasImageFileEstimator,
        KerasImageFileModel,
    )
    from sparkonnx.spark_api.transformers.image_transformer import ImageTransformer
    from sparkonnx.spark_api.transformers.keras_image_transformer import KerasImageFileTransformer
    from sparkonnx.spark_api.transformers.keras_transformer import KerasTransformer
    from sparkonnx.spark_api.transformers.onnx_transformer import ONNXTransformer
    from sparkonnx.spark_api.transformers.parquet_scoring import (
        register_data_source,
        score_parquet,
    )
    from sparkonnx.spark_api.transformers.text_transformers import TextEmbedder, TextTransformer
    from sparkonnx.spark_api.transformers.tf_image_transformer import TFImageTransformer
    from sparkonnx.spark_api.transformers.tf_input_graph import TFInputGraph
    from sparkonnx.spark_api.transformers.tf_transformer import TFTransformer
    from sparkonnx.spark_api.transformers.zoo_transformers import (
        DeepImageFeaturizer,
        DeepImagePredictor,
    )
