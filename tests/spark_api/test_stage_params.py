"""Every public stage's Params, walked: each is an `__init__` keyword with the Param's default,
has a doc, a getter and a `Self` setter, and survives save / load with a non-default value.
Then the one stage cache: bounded, build-once across threads, shared by copies correctly."""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyspark.ml import Estimator, Transformer

import sparkonnx
from sparkonnx import testing
from sparkonnx.engine.image_batch import batch_to_image_structs
from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.transformers.stage_cache import STAGE_CACHE, StageCache, stage_key

#: Every Transformer / Estimator exported by sparkonnx, fitted models included.
STAGES = sorted(
    {
        obj
        for obj in (getattr(sparkonnx, name) for name in sparkonnx.__all__)
        if isinstance(obj, type) and issubclass(obj, Transformer | Estimator)
    },
    key=lambda cls: cls.__name__,
)
#: `__init__` keywords that take the model (or the text stages' tokenizer) itself, not a Param.
MODEL_KEYWORDS = {"model", "tfInputGraph", "graph", "tokenizer"}
#: sparkdl keywords accepted with a DeprecationWarning and ignored (no Param behind them).
DEPRECATED_KEYWORDS = {"tfHParms"}
TOKENIZER = Path(__file__).parent.parent / "fixtures" / "text" / "minilm-uncased-tokenizer.json"
#: Valid values for each Param; the first that is not the stage's default is used.
SAMPLES: dict[str, list[Any]] = {
    "inputCol": ["in_col"],
    "outputCol": ["out_col"],
    "labelCol": ["one_hot"],
    "seed": [7],
    "modelFile": ["/models/saved-elsewhere.onnx"],
    "inputMapping": [{"a": "x"}],
    "outputMapping": [{"y": "b"}],
    "batchSize": [7],
    "device": ["cpu", "cuda"],
    "deviceId": [1],
    "outputFormat": ["vector", "array"],
    "allowCast": [True, False],
    "precision": ["int8"],
    "calibrationPath": ["/data/calibration"],
    "calibrationRows": [64],
    "calibrationSeed": [3],
    "precisionTolerance": [{"cosine": 0.9}],
    "outputMode": ["vector", "array"],  # the same order as outputFormat: both must agree
    "handleInvalid": ["error"],
    "errorCol": ["why"],
    "channelOrder": ["BGR"],
    "layout": ["NCHW"],
    "inputSize": [[32, 24]],
    "scale": [0.5],
    "mean": [[1.0, 2.0, 3.0]],
    "std": [[2.0]],
    "resample": ["nearest"],
    "scaleHint": ["SCALE_AREA_AVERAGING"],
    "inputTensor": ["image"],
    "outputTensor": ["scores"],
    "imageLoader": [f"{__name__}:load_image"],
    "modelName": ["Xception"],
    "weights": ["none"],
    "decodePredictions": [True],
    "topK": [3],
    "kerasOptimizer": [{"class_name": "SGD", "config": {"learning_rate": 0.5}}],
    "kerasLoss": ["mse"],
    "kerasFitParams": [{"epochs": 3, "batch_size": 4}],
    "maxTrainingDataBytes": [4096],
    "maxPixels": [1000],
    "rowIdCol": ["id"],
    "tokenizerFile": [str(TOKENIZER)],  # a real file: saving a text stage stores its bytes
    "maxLength": [32],
    "pooling": ["cls"],
    "normalize": [False],
    "modelOutput": ["last_hidden_state"],
}


def load_image(uri: str) -> np.ndarray:
    """The imageLoader named in SAMPLES (never run here)."""
    raise NotImplementedError(uri)


def keywords(cls: type) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters  # keyword_only keeps the signature
    return {n: p for n, p in params.items() if n != "self"}


def sample(stage: Any, name: str) -> Any:
    default = stage.getOrDefault(name) if stage.hasDefault(name) else None
    for value in SAMPLES[name]:
        if value != default:
            return value
    raise AssertionError(f"SAMPLES[{name!r}] has no value other than the default {default!r}")


def samples_for(cls: type) -> dict[str, Any]:
    blank = cls()
    missing = [p.name for p in blank.params if p.name not in SAMPLES]
    assert not missing, f"add sample values for {cls.__name__}'s {missing} to SAMPLES"
    return {p.name: sample(blank, p.name) for p in blank.params}


def with_model(cls: type, values: dict[str, Any]) -> Any:
    """The stage with every Param at its sample value, and a model where saving needs one."""
    kwargs = keywords(cls)
    model = testing.tiny_cnn()
    if "model" in kwargs:
        return cls(**values, model=model)
    if "tfInputGraph" in kwargs:
        return cls(**values, tfInputGraph=sparkonnx.TFInputGraph.fromOnnx(model))
    stage = cls(**values)
    if hasattr(stage, "setModel"):  # KerasTransformer: an ONNX model in place of the Keras file
        stage.setModel(model)
    return stage


def test_the_walk_covers_every_public_stage() -> None:
    names = {cls.__name__ for cls in STAGES}
    assert names >= {
        "ONNXTransformer",
        "KerasTransformer",
        "TFTransformer",
        "ImageTransformer",
        "KerasImageFileTransformer",
        "DeepImageFeaturizer",
        "DeepImagePredictor",
        "KerasEstimator",
        "KerasEstimatorModel",
        "KerasImageFileEstimator",
        "KerasImageFileModel",
    }


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_params_are_exactly_the_init_keywords_with_the_same_defaults(cls: type) -> None:
    stage = cls()
    kwargs = keywords(cls)
    params = {p.name for p in stage.params}
    assert params == set(kwargs) - MODEL_KEYWORDS - DEPRECATED_KEYWORDS, (
        f"{cls.__name__}: Params not taken by __init__: {sorted(params - set(kwargs))}; "
        f"__init__ keywords that are no Param: "
        f"{sorted(set(kwargs) - params - MODEL_KEYWORDS - DEPRECATED_KEYWORDS)}"
    )
    for name in params:
        keyword = kwargs[name]
        assert keyword.kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}.{name}"
        if keyword.default is not None:  # None: leave the Param at its default (or unset)
            assert stage.getOrDefault(name) == keyword.default, f"{cls.__name__}.{name}"


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_each_param_has_a_doc_a_getter_and_a_self_setter(cls: type) -> None:
    values = samples_for(cls)
    stage = cls()
    for param in stage.params:
        name = param.name
        assert len(param.doc.strip()) > 10, f"{cls.__name__}.{name} has no real doc"
        upper = name[0].upper() + name[1:]
        setter = getattr(stage, f"set{upper}", None)
        getter = getattr(stage, f"get{upper}", None)
        assert setter is not None and getter is not None, f"{cls.__name__}: get/set{upper}"
        assert inspect.signature(setter).return_annotation == "Self", f"{cls.__name__}.set{upper}"
        assert setter(values[name]) is stage
        assert getter() == values[name] == stage.getOrDefault(name)


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.__name__)
def test_non_default_params_round_trip_through_save_and_load(
    cls: type, spark, workdir: Path
) -> None:
    values = samples_for(cls)
    stage = with_model(cls, values)
    for name, value in values.items():
        assert stage.getOrDefault(name) == value, f"{cls.__name__}({name}=...) was not set"
    stage.save(str(workdir / "stage"))
    loaded = cls.load(str(workdir / "stage"))
    assert type(loaded) is cls and loaded.uid == stage.uid
    for name, value in values.items():
        assert loaded.isSet(name) and loaded.getOrDefault(name) == value, f"{cls.__name__}.{name}"


def test_params_the_issue_named_are_gone_or_taken() -> None:
    keras_params = {p.name for p in sparkonnx.KerasTransformer().params}
    assert not keras_params & {"inputMapping", "outputMapping", "precision", "calibrationRows"}
    tf_params = {p.name for p in sparkonnx.TFTransformer().params}
    assert not tf_params & {"modelFile", "inputCol", "outputCol"}
    for estimator in (sparkonnx.KerasEstimator, sparkonnx.KerasImageFileEstimator):
        assert estimator(deviceId=2).getDeviceId() == 2
    # one declaration each: the same Param object on every class that has it
    for name in ("modelFile", "imageLoader", "seed", "inputCol"):
        owners = {getattr(cls, name) for cls in STAGES if hasattr(cls, name)}
        assert len(owners) == 1, name


def test_a_copy_with_another_model_file_reads_that_file(workdir: Path) -> None:
    other = workdir / "other.onnx"
    other.write_bytes(testing.mlp((4, 3)).SerializeToString())
    given = OnnxModel.load(testing.mlp((4, 2)))
    stage = sparkonnx.ONNXTransformer(model=given, inputCol="x", outputCol="y")
    assert stage.copy().getModel() is given  # a plain copy shares the model
    switched = stage.copy({stage.modelFile: str(other)})
    assert switched.getModel().outputs[0].shape == ("N", 3)
    assert stage.getModel() is given
    stage.setModelFile(str(other))  # the one set last wins
    assert stage.getModel().sha256 == switched.getModel().sha256
    assert stage.setModel(given).getModel() is given


def test_tf_transformer_needs_both_mappings() -> None:
    graph = sparkonnx.TFInputGraph.fromOnnx(testing.mlp((4, 2)))
    stage = sparkonnx.TFTransformer(tfInputGraph=graph, inputMapping={"features": "x"})
    with pytest.raises(ValueError, match=r"TFTransformer needs outputMapping .*e\.g\. outputMap"):
        stage._mappings(stage.getModel())


# -- the stage cache ----------------------------------------------------------------------
def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = StageCache(2)
    for key in ("a", "b"):
        cache.get_or_build(key, lambda key=key: key.upper())
    assert cache.get_or_build("a", lambda: pytest.fail("a was built again")) == "A"
    cache.get_or_build("c", lambda: "C")  # full: b, the least recently used, goes
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2
    cache.resize(1)
    assert len(cache) == 1 and "c" in cache
    with pytest.raises(ValueError, match="maxsize must be >= 1; got 0"):
        StageCache(0)


def test_threads_missing_one_key_together_build_it_once_and_failures_are_not_kept() -> None:
    cache = StageCache(4)
    calls: list[int] = []

    def slow_build() -> object:
        calls.append(1)
        time.sleep(0.3)
        return object()

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get_or_build("k", slow_build)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 4 and all(g is got[0] for g in got)

    def failing() -> object:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.get_or_build("bad", failing)
    assert cache.get_or_build("bad", lambda: "ok") == "ok"


def test_copies_share_a_lineage_and_new_or_loaded_stages_do_not(spark, workdir: Path) -> None:
    stage = sparkonnx.ONNXTransformer(model=testing.mlp((4, 2)), inputCol="x", outputCol="y")
    key = stage_key(stage, "k")
    assert stage_key(stage.copy(), "k") == key
    assert stage_key(stage.copy({stage.batchSize: 3}), "k") == key  # Params go in the key
    assert stage_key(sparkonnx.ONNXTransformer(), "k") != key
    stage.save(str(workdir / "s"))
    assert stage_key(sparkonnx.ONNXTransformer.load(str(workdir / "s")), "k") != key


@pytest.fixture()
def photos_df(spark):  # type: ignore[no-untyped-def]
    """24 real photo crops (BGR image structs, 32 x 32) in 2 partitions."""
    pixels = testing.photo_crops(24, size=32)
    structs = batch_to_image_structs(pixels, origins=[f"mem://{i}" for i in range(24)])
    table = pa.table({"id": pa.array(np.arange(24)), "image": structs})
    return spark.createDataFrame(table).repartition(2)


@pytest.fixture()
def counted_builds(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of prunings and lower-precision builds (the real functions still run)."""
    from sparkonnx.converters import quantize
    from sparkonnx.engine import pruning

    counts = {"pruned": 0, "quantized": 0}
    real_keep, real_quantize = pruning.keep_outputs, quantize.quantize

    def keep(*args: Any, **kwargs: Any) -> Any:
        counts["pruned"] += 1
        return real_keep(*args, **kwargs)

    def quant(*args: Any, **kwargs: Any) -> Any:
        counts["quantized"] += 1
        return real_quantize(*args, **kwargs)

    monkeypatch.setattr(pruning, "keep_outputs", keep)
    monkeypatch.setattr(quantize, "quantize", quant)
    STAGE_CACHE.clear()
    return counts


def test_two_threads_transforming_with_one_stage_prune_and_quantize_once(
    photos_df, precision_cache: Path, counted_builds: dict[str, int]
) -> None:
    stage = sparkonnx.ImageTransformer(
        inputCol="image",
        outputCol="p",
        model=testing.tiny_cnn(),
        precision="fp16",
        precisionTolerance={"top1": 0.5},  # a random CNN: near-ties may flip in fp16
    )
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = [r.p for r in stage.transform(photos_df).orderBy("id").collect()]
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert counted_builds == {"pruned": 1, "quantized": 1}
    assert results[0] == results[1] and len(results[0]) == 24
    assert len(list(precision_cache.glob("*.onnx"))) == 1

    stage.copy().transform(photos_df)  # a plain copy shares the build
    assert counted_builds["quantized"] == 1
    other = stage.copy({stage.precisionTolerance: {"top1": 0.6}})
    other.transform(photos_df)  # other Params: a build of its own
    assert counted_builds == {"pruned": 1, "quantized": 2}
