"""Issue 14.1: a saved stage runs no code it was not given.

An attacker who can edit a saved stage's metadata names a function in ``imageLoader``; loading
must refuse it (before importing anything) unless the user trusts that name. Each case checks
that nothing ran: the photos are still there, no marker file was written, the module named
was never imported.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel

from sparkonnx import (
    KerasImageFileEstimator,
    KerasImageFileTransformer,
    UntrustedCodeError,
    register_image_loader,
    testing,
)
from sparkonnx.spark_api.runtime import code_names
from tests.security import loaders
from tests.security.evil import MARKER
from tests.security.saved import edit_metadata, stage_dirs

EVIL = "tests.security.evil"


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts as a fresh process would: no loader trusted yet, no marker."""
    monkeypatch.setattr(code_names, "_trusted", set())
    MARKER.unlink(missing_ok=True)
    sys.modules.pop(EVIL, None)
    yield
    MARKER.unlink(missing_ok=True)


@pytest.fixture()
def photos(workdir: Path) -> list[Path]:
    """Three real photos the user would not want deleted."""
    data = Path(pytest.importorskip("skimage.data").__path__[0])
    out = workdir / "photos"
    out.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png"):
        shutil.copy(data / name, out / name)
    return sorted(out.iterdir())


def _uris(spark: Any, photos: list[Path], extra: tuple[str, ...] = ()) -> Any:
    rows = [(str(p),) for p in photos] + [(u,) for u in extra]
    return spark.createDataFrame(rows, "uri string")


def _saved_stage(spark: Any, photos: list[Path], workdir: Path) -> tuple[Path, np.ndarray]:
    """A KerasImageFileTransformer with a benign loader, saved (in a Pipeline) and its output."""
    stage = KerasImageFileTransformer(
        inputCol="uri",
        outputCol="out",
        model=testing.image_identity(size=(loaders.SIZE, loaders.SIZE)),
        imageLoader=loaders.load_small,
    )
    df = _uris(spark, photos)
    expected = np.array([r.out for r in stage.transform(df).orderBy("uri").collect()])
    path = workdir / "pipeline"
    Pipeline(stages=[stage]).fit(df).write().save(str(path))
    code_names._trusted.clear()  # as if this process had not built the stage
    return path, expected


def _set_loader(name: str, key: str = "paramMap") -> Any:
    def change(metadata: dict[str, Any]) -> None:
        metadata["paramMap"].pop("imageLoader", None)
        metadata.setdefault(key, {})["imageLoader"] = name

    return change


def _nothing_ran(photos: list[Path]) -> None:
    assert all(p.is_file() and p.stat().st_size > 0 for p in photos), "a photo was deleted"
    assert not MARKER.exists(), MARKER.read_text()
    assert EVIL not in sys.modules


@pytest.mark.parametrize("name", ["os:remove", "os:system", "builtins:exec", "subprocess:run"])
def test_standard_library_loaders_are_refused_on_load(spark, photos, workdir, name):
    path, _ = _saved_stage(spark, photos, workdir)
    edit_metadata(stage_dirs(path)[0], _set_loader(name))
    with pytest.raises(UntrustedCodeError, match=r"refusing to load .*metadata.*standard library"):
        PipelineModel.load(str(path))
    with pytest.raises(UntrustedCodeError, match="standard library"):  # trusting does not help
        KerasImageFileTransformer.load(str(stage_dirs(path)[0]), trusted=[name])
    register_image_loader(loaders.load_small)
    with pytest.raises(UntrustedCodeError, match="standard library"):
        register_image_loader(name)
    _nothing_ran(photos)


def test_a_loader_nobody_registered_is_refused_and_never_imported(spark, photos, workdir):
    path, _ = _saved_stage(spark, photos, workdir)
    name = f"{EVIL}:plant_marker"
    edit_metadata(stage_dirs(path)[0], _set_loader(name))
    with pytest.raises(
        UntrustedCodeError,
        match=rf"refusing to load .*stages.*metadata: its imageLoader is '{name}', which was "
        r"not registered in this process.*register_image_loader",
    ):
        PipelineModel.load(str(path))
    _nothing_ran(photos)
    # The user may still decide to trust it: then (and only then) it runs.
    stage = KerasImageFileTransformer.load(str(stage_dirs(path)[0]), trusted=[name])
    stage.transform(_uris(spark, photos[:1])).collect()
    assert MARKER.read_text().count("ran on") == 1


def test_a_loader_smuggled_in_as_a_default_is_refused(spark, photos, workdir):
    path, _ = _saved_stage(spark, photos, workdir)
    edit_metadata(stage_dirs(path)[0], _set_loader(f"{EVIL}:plant_marker", "defaultParamMap"))
    with pytest.raises(UntrustedCodeError, match="was not registered"):
        PipelineModel.load(str(path))
    _nothing_ran(photos)


@pytest.mark.parametrize(
    "name",
    ["tests.security.loaders:os.system", "tests.security.loaders:load_small.__globals__"],
)
def test_names_reaching_other_code_through_a_trusted_module_are_refused(
    spark, photos, workdir, name
):
    path, _ = _saved_stage(spark, photos, workdir)
    stage_dir = stage_dirs(path)[0]
    edit_metadata(stage_dir, _set_loader(name))
    with pytest.raises(UntrustedCodeError, match=r"dunder|not the function of that name"):
        stage = KerasImageFileTransformer.load(str(stage_dir), trusted=[name])
        stage.transform(_uris(spark, photos, ("touch /tmp/never",))).collect()
    _nothing_ran(photos)


def test_registered_loaders_load_and_give_the_same_output(spark, photos, workdir):
    path, expected = _saved_stage(spark, photos, workdir)
    with pytest.raises(UntrustedCodeError, match="was not registered"):
        PipelineModel.load(str(path))
    register_image_loader(loaders.load_small)
    loaded = PipelineModel.load(str(path))
    out = loaded.transform(_uris(spark, photos)).orderBy("uri").collect()
    np.testing.assert_array_equal(np.array([r.out for r in out]), expected)
    assert code_names.is_trusted("tests.security.loaders:load_small")


def test_a_loader_given_in_this_process_counts_as_registered(spark, photos, workdir):
    stage = KerasImageFileTransformer(
        inputCol="uri",
        outputCol="out",
        model=testing.image_identity(size=(8, 8)),
        imageLoader=loaders.load_dark,
    )
    stage.save(str(workdir / "s"))
    assert KerasImageFileTransformer.load(str(workdir / "s")).getImageLoader() == (
        "tests.security.loaders:load_dark"
    )


def test_a_loader_copied_in_and_saved_here_loads_here(spark, workdir):
    stage = KerasImageFileTransformer(
        inputCol="uri", outputCol="out", model=testing.image_identity(size=(8, 8))
    )
    copied = stage.copy({stage.imageLoader: loaders.load_dark})  # no Param converter runs
    copied.save(str(workdir / "copied"))
    assert KerasImageFileTransformer.load(str(workdir / "copied")).getImageLoader() == (
        "tests.security.loaders:load_dark"
    )


def test_the_estimator_refuses_an_edited_loader(spark, photos, workdir):
    est = KerasImageFileEstimator(
        inputCol="uri",
        outputCol="p",
        labelCol="label",
        imageLoader=loaders.load_small,
        modelFile=str(workdir / "never-read.keras"),
    )
    est.save(str(workdir / "est"))
    edit_metadata(workdir / "est", _set_loader("os:remove"))
    with pytest.raises(UntrustedCodeError, match="standard library module 'os'"):
        KerasImageFileEstimator.load(str(workdir / "est"))
    edit_metadata(workdir / "est", _set_loader(f"{EVIL}:plant_marker"))
    code_names._trusted.clear()
    with pytest.raises(UntrustedCodeError, match="was not registered"):
        KerasImageFileEstimator.load(str(workdir / "est"))
    _nothing_ran(photos)


def test_setting_a_standard_library_name_directly_is_refused():
    with pytest.raises(UntrustedCodeError, match="standard library module 'os'"):
        KerasImageFileTransformer(imageLoader="os:system")
    with pytest.raises(UntrustedCodeError, match="not an import path"):
        KerasImageFileTransformer(imageLoader="a:b:c")
