"""sparkdl's quick user guide runs as written: every script of examples/sparkdl_guide.

Two checks per script: it is the guide's code with only the edits its header lists (applied to
the verbatim blocks in GUIDE.md, no Spark needed), and it runs on local[2] over real photos of
mixed sizes, with its results checked (accuracy on an easy labelled set where the guide trains,
parity with Keras / TensorFlow where it runs a model). All scripts share one Python process and
one Spark session (runpy), and one zoo cache, so the zoo model is built once.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.ml.linalg import DenseVector

GUIDE_DIR = Path(__file__).resolve().parents[2] / "examples" / "sparkdl_guide"
SCRIPTS = sorted(p.name for p in GUIDE_DIR.glob("block*.py"))
BLOCK_MARK = re.compile(r"^# ---- guide block (\d+)$")


# --------------------------------------------------------------------------- the edits


def guide_blocks() -> dict[int, list[str]]:
    """Block number -> its lines, from GUIDE.md (the guide's code blocks, verbatim)."""
    text = (GUIDE_DIR / "GUIDE.md").read_text()
    found = re.findall(r"^## Block (\d+)\n\n```\w+\n(.*?)```", text, re.M | re.S)
    return {int(n): [line.rstrip() for line in code.splitlines()] for n, code in found}


def script_parts(text: str) -> tuple[list[tuple[list[str], list[str]]], list[int], list[str]]:
    """(hunks of the header's diff, guide block numbers, the guide code) of one script."""
    lines = text.splitlines()
    hunks: list[tuple[list[str], list[str]]] = []
    for line in lines:
        if not line.startswith(("# - ", "# + ", "# -", "# +")) or line.startswith("# ---"):
            continue
        sign, body = line[2], line[4:]
        if sign == "-" and (not hunks or hunks[-1][1]):
            hunks.append(([], []))
        hunks[-1][0 if sign == "-" else 1].append(body.rstrip())
    start, end = lines.index("# fmt: off"), lines.index("# fmt: on")
    blocks, code = [], []
    for line in lines[start + 1 : end]:
        mark = BLOCK_MARK.match(line)
        if mark:
            blocks.append(int(mark.group(1)))
        else:
            code.append(line.rstrip())
    return hunks, blocks, code


def apply(hunks: list[tuple[list[str], list[str]]], original: list[str]) -> list[str]:
    """`original` with each hunk's '-' lines (found in order) replaced by its '+' lines."""
    result, cursor = list(original), 0
    for old, new in hunks:
        for at in range(cursor, len(result) - len(old) + 1):
            if result[at : at + len(old)] == old:
                break
        else:
            raise AssertionError(f"the diff removes lines the guide does not have: {old}")
        result[at : at + len(old)] = new
        cursor = at + len(new)
    return result


def test_every_block_of_the_guide_has_a_script():
    covered = {n for s in SCRIPTS for n in script_parts((GUIDE_DIR / s).read_text())[1]}
    assert sorted(covered) == list(range(1, 22))  # block 3 (image_df.show()) follows 1 and 2


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_the_guide_with_only_the_edits_it_lists(script):
    hunks, blocks, code = script_parts((GUIDE_DIR / script).read_text())
    guide = guide_blocks()
    original = [line for n in blocks for line in guide[n]]
    assert hunks, f"{script} lists no edits"
    assert apply(hunks, original) == code


def test_the_diff_check_catches_an_unlisted_edit():
    hunks, blocks, code = script_parts((GUIDE_DIR / "block01_imageschema.py").read_text())
    original = [line for n in blocks for line in guide_blocks()[n]]
    assert apply(hunks, original) != [*code[:-1], "image_df.show(5)"]
    with pytest.raises(AssertionError, match="does not have"):
        apply([(["not in the guide"], ["x"])], original)


# --------------------------------------------------------------------------- running them


@pytest.fixture(scope="module")
def guide(spark, tmp_path_factory):
    """Runs a script in this process (the shared session) and returns its globals."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARKDL_GUIDE_DIR", str(tmp_path_factory.mktemp("sparkdl-guide")))
    mp.setenv("SPARKONNX_CACHE", str(tmp_path_factory.mktemp("sparkdl-guide-cache")))
    mp.syspath_prepend(str(GUIDE_DIR))
    sys.modules.pop("guide_setup", None)

    def run(script: str) -> dict[str, Any]:
        return runpy.run_path(str(GUIDE_DIR / script), run_name="__main__")

    yield run
    sys.modules.pop("guide_setup", None)
    mp.undo()


def _names(rows: list[Any]) -> list[str]:
    return sorted(Path(r).name for r in rows)


@pytest.mark.slow
def test_blocks_1_and_3_imageschema(guide, capsys):
    g = guide("block01_imageschema.py")
    df = g["image_df"]
    assert df.columns == ["image"]
    rows = [r.image for r in df.collect()]
    assert _names(r.origin for r in rows) == sorted(
        p.name for p in Path(g["sample_img_dir"]).iterdir()
    )
    assert len({(r.height, r.width) for r in rows}) >= 4  # mixed sizes
    gray = next(r for r in rows if r.origin.endswith("camera.jpg"))
    assert (gray.nChannels, gray.mode) == (1, 0)
    assert " image|" in capsys.readouterr().out  # image_df.show() printed the table


@pytest.mark.slow
def test_blocks_2_and_3_custom_decoder(guide):
    g = guide("block02_custom_decoder.py")
    rows = g["image_df"].collect()
    assert len(rows) == 7 and all(r.error is None for r in rows)
    from sparkonnx import imageStructToArray
    from sparkonnx.engine.image_decode import decode_image

    first = rows[0]
    expected = decode_image(Path(first.path.removeprefix("file:")).read_bytes())
    np.testing.assert_array_equal(imageStructToArray(first.image), expected)


@pytest.mark.slow
def test_block_4_transfer_learning_learns_the_labelled_set(guide, capsys):
    g = guide("block04_transfer_learning.py")
    assert "Training set accuracy = " in capsys.readouterr().out
    assert g["evaluator"].evaluate(g["predictionAndLabels"]) >= 0.9
    everything = g["model"].transform(g["train_images_df"])
    assert everything.count() == 48
    assert g["evaluator"].evaluate(everything) >= 0.9


@pytest.mark.slow
def test_blocks_5_to_7_tuning_learns_the_labelled_set(guide):
    g = guide("block05_tuning.py")
    cv_model, train_df, bc = g["cvModel"], g["train_df"], g["bc"]
    assert len(cv_model.avgMetrics) == 2 and max(cv_model.avgMetrics) >= 0.9, cv_model.avgMetrics
    scored = cv_model.transform(train_df)
    first = scored.select("prediction").head()[0]
    assert isinstance(first, DenseVector) and first.size == 1000
    assert bc.evaluate(scored) >= 0.9  # areaUnderROC of the refit best model on all 48 images


@pytest.mark.slow
def test_block_8_deep_image_predictor(guide):
    g = guide("block08_deep_image_predictor.py")
    rows = g["predictions_df"].collect()
    assert len(rows) == 7
    for row in rows:
        top = row.predicted_labels
        assert len(top) == 10 and set(top[0].asDict()) == {"class", "description", "probability"}
        probabilities = [t.probability for t in top]
        assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.slow
def test_block_9_tf_image_transformer_matches_tensorflow(guide):
    g = guide("block09_tf_image_transformer.py")
    rows = g["processed_image_df"].collect()
    assert len(rows) == 7
    tf = g["tf"]
    from sparkonnx import imageStructToArray

    for row in rows:
        out = row.predictions
        assert (out.height, out.width, out.nChannels, out.mode) == (299, 299, 3, 21)  # CV_32FC3
        assert out.origin == row.image.origin
    by_origin = {r.image.origin: r for r in rows}
    for name in ("chelsea.jpg", "camera.jpg"):  # colour, and gray fed as 3 channels
        row = next(r for o, r in by_origin.items() if o.endswith(name))
        bgr = imageStructToArray(row.image).astype(np.float32)
        rgb = np.repeat(bgr, 3, axis=-1) if bgr.shape[-1] == 1 else bgr[..., ::-1]
        expected = tf.compat.v1.image.resize_images(rgb[np.newaxis], (299, 299)).numpy()[0]
        got = imageStructToArray(row.predictions)[..., ::-1]  # the struct is BGR
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=5e-3)  # float32 of 0..255


@pytest.mark.slow
def test_blocks_10_and_11_keras_image_file_transformer_matches_keras(guide):
    g = guide("block10_keras_image_file_transformer.py")
    rows = g["keras_pred_df"].collect()
    assert len(rows) == 7
    assert all(isinstance(r.predictions, DenseVector) and r.predictions.size == 1000 for r in rows)
    loader, model = g["loadAndPreprocessKerasInceptionV3"], g["model"]
    expected = model.predict(np.concatenate([loader(r.uri) for r in rows]), verbose=0)
    got = np.stack([r.predictions.toArray() for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.ptp(got[:, 0]) > 0  # different photos give different scores


@pytest.mark.slow
def test_blocks_12_to_15_tf_transformer_matches_tensorflow(guide):
    g = guide("block12_tf_transformer.py")
    rows = g["odf"].select("inputCol", "outputCol").collect()
    assert len(rows) == 1000
    x = np.array([r.inputCol for r in rows], np.float32)
    expected = 1 / (1 + np.exp(-(x @ g["w0"])))
    got = np.array([r.outputCol for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # float32 graph
    single_node = np.asarray(g["output"])  # block 14, TensorFlow on the driver
    assert single_node.shape == (1000, 1)


@pytest.mark.slow
def test_block_16_keras_transformer_matches_keras(guide):
    g = guide("block16_keras_transformer.py")
    rows = g["final_df"].collect()
    x = np.array([r.features for r in rows], np.float32)
    expected = g["model"].predict(x, verbose=0)
    np.testing.assert_allclose(np.array([r.predictions for r in rows]), expected, rtol=1e-4)


@pytest.fixture(scope="module")
def sql_globals(guide):
    return guide("block17_sql_udf.py")


@pytest.mark.slow
def test_blocks_17_to_21_sql_functions(sql_globals):
    rows = sql_globals["predictions"].collect()
    assert len(rows) == 7
    assert all(r.predictions is not None and len(r.predictions) == 1000 for r in rows)
    spark = sql_globals["spark"]
    direct = spark.sql("SELECT inceptionV3_udf(image) AS p FROM sample_images").collect()
    np.testing.assert_allclose(
        [r.p for r in direct], [r.predictions for r in rows], rtol=1e-5, atol=1e-7
    )


@pytest.mark.slow
def test_block_19_sql_function_with_preprocessor_on_mixed_size_photos(sql_globals):
    spark = sql_globals["spark"]
    query = "SELECT inceptionV3_udf_with_preprocessing(image) AS p FROM sample_images"
    rows = spark.sql(query).collect()
    assert len(rows) == 7 and all(r.p is not None and len(r.p) == 1000 for r in rows)
