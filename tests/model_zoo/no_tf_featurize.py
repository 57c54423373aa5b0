"""DeepImageFeaturizer on a folder of images in a process where TensorFlow cannot be imported
(run by test_transfer.py with a sitecustomize that blocks it, on the driver and the workers).

python -m tests.model_zoo.no_tf_featurize IMAGE_FOLDER OUT.json   # {path: features}
"""

import json
import sys

from pyspark.sql import SparkSession

from sparkonnx import DeepImageFeaturizer, read_images


def main(folder: str, out: str) -> None:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("tensorflow is importable: the test would prove nothing")
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        images = read_images(folder, spark=spark)
        featurizer = DeepImageFeaturizer(
            inputCol="image", outputCol="f", modelName="MobileNetV3Small", weights=None
        )
        rows = featurizer.transform(images).select("path", "f").collect()
        assert all(r.f is not None for r in rows), rows
        with open(out, "w") as f:
            json.dump({r.path: r.f.toArray().tolist() for r in rows}, f)
        assert "tensorflow" not in {m for m, v in sys.modules.items() if v is not None}
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
