"""A driver program for the cluster tests, run in its own process against a standalone cluster.

    python driver_jobs.py MASTER_URL OUT_DIR SECTION [SECTION ...]

Each section writes OUT_DIR/SECTION.json: its results, or {"error": traceback} if it failed,
so one broken section does not hide the others. Functions sent to executors are defined here
(shipped by value) and import only what the executors' base install has.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

#: Over the 4 MB inline limit, so it is shipped to executors as a Spark file.
SHIPPED_WIDTHS = (512, 1024, 1024, 8)
ROWS, PARTITIONS = 2000, 12


def session(master: str, app: str, conf: dict[str, str]) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app)
    base = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.executor.memory": "1g",
        "spark.task.maxFailures": "4",  # a killed executor's tasks are retried
        "spark.sql.shuffle.partitions": "4",
    }
    for key, value in {**base, **conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def tensor_frame(spark: Any, rows: int = ROWS, partitions: int = PARTITIONS) -> Any:
    """id + x: float32[512] computed from the id by Spark (no data from the driver)."""
    width = SHIPPED_WIDTHS[0]
    x = f"transform(sequence(0, {width - 1}), i -> cast(sin(id * {width} + i) as float))"
    return spark.range(0, rows, 1, partitions).selectExpr("id", f"{x} as x")


def shipped_model() -> Any:
    from sparkonnx import testing

    return testing.mlp(SHIPPED_WIDTHS, seed=3)


def scored(spark: Any) -> tuple[list[int], np.ndarray]:
    from sparkonnx import ONNXTransformer

    stage = ONNXTransformer(model=shipped_model(), inputCol="x", outputCol="y")
    rows = stage.transform(tensor_frame(spark)).select("id", "y").orderBy("id").collect()
    return [r.id for r in rows], np.array([r.y for r in rows], np.float32)


def local_reference(model: Any, frame: Any) -> np.ndarray:
    """The model run by ONNX Runtime in this process on ``frame``'s x column, in id order."""
    import onnxruntime as ort

    x = frame.orderBy("id").toPandas()["x"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.stack(x.to_numpy()).astype(np.float32)})[0]


def executor_facts(_: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Per task: pid, Python, where sparkonnx comes from, TensorFlow importable, shipped files."""
    import importlib.util
    import os
    import sys

    from pyspark import SparkFiles

    import sparkonnx

    try:
        shipped = sorted(n for n in os.listdir(SparkFiles.getRootDirectory()) if "sparkonnx" in n)
    except OSError:
        shipped = []

    def parent(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as stat:  # "pid (name) state ppid ..."
            return int(stat.read().rsplit(")", 1)[1].split()[1])

    fact = {
        "pid": os.getpid(),
        "executor_jvm": parent(parent(os.getpid())),  # worker <- pyspark.daemon <- executor
        "python": sys.executable,
        "sparkonnx": sparkonnx.__file__,
        "tensorflow": importlib.util.find_spec("tensorflow") is not None,
        "shipped": shipped,
    }
    yield pa.RecordBatch.from_pylist([{"fact": json.dumps(fact)}])


def facts(spark: Any, partitions: int = 8) -> list[dict]:
    df = spark.range(0, partitions, 1, partitions).mapInArrow(executor_facts, "fact string")
    return [json.loads(r.fact) for r in df.collect()]


def section_ship(spark: Any, out: Path) -> dict:
    from sparkonnx.spark_api.shipping import INLINE_LIMIT_BYTES

    ids, y = scored(spark)
    np.save(out / "ship-y.npy", y)
    np.save(out / "ship-reference.npy", local_reference(shipped_model(), tensor_frame(spark)))
    return {
        "ids": ids == list(range(ROWS)),
        "model_bytes": len(shipped_model().SerializeToString()),
        "inline_limit": INLINE_LIMIT_BYTES,
        "executors": facts(spark),
    }


def _executor_pids(app_id: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "CoarseGrainedExecutorBackend" in cmd and app_id in cmd:
                pids.append(int(entry.name))
    return sorted(pids)


def _kill_mid_job(spark: Any, killed: dict) -> None:
    """Once some tasks of the running job are done and others are not, kill -9 one executor."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info and 0 < info.numCompletedTasks < info.numTasks - 4:
                pids = _executor_pids(spark.sparkContext.applicationId)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.update(pid=pids[0], done=info.numCompletedTasks, of=info.numTasks)
                    return
        time.sleep(0.05)


def _wait_for_executors(spark: Any, count: int, timeout: float = 120) -> None:
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()  # the driver counts too
    deadline = time.monotonic() + timeout
    while status.size() < count + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()


def section_kill(spark: Any, out: Path) -> dict:
    _, undisturbed = scored(spark)
    before = _executor_pids(spark.sparkContext.applicationId)
    killed: dict = {}
    killer = threading.Thread(target=_kill_mid_job, args=(spark, killed), daemon=True)
    killer.start()
    ids, disturbed = scored(spark)
    killer.join(timeout=5)
    np.save(out / "kill-undisturbed.npy", undisturbed)
    np.save(out / "kill-disturbed.npy", disturbed)
    _wait_for_executors(spark, 2)  # the one started in place of the killed one, too
    after_facts = facts(spark, 16)
    return {
        "killed": killed,
        "executors_before": before,
        "executors_after": _executor_pids(spark.sparkContext.applicationId),
        "ids": ids == list(range(ROWS)),
        "facts_after": after_facts,
    }


def image_pipeline_input(spark: Any, out: Path) -> Any:
    from sparkonnx import read_images, testing

    folder = out / "images"
    if not folder.exists():
        testing.write_images(folder, testing.smooth_images(12, seed=7))
    return read_images(str(folder), numPartitions=3, spark=spark)


def image_scores(model: Any, images: Any) -> dict[str, list[float]]:
    rows = model.transform(images).select("path", "probabilities").collect()
    return {r.path.rsplit("/", 1)[-1]: list(r.probabilities) for r in rows}


def section_save(spark: Any, out: Path) -> dict:
    from pyspark.ml import Pipeline

    from sparkonnx import ImageTransformer, testing

    stage = ImageTransformer(
        inputCol="image", outputCol="probabilities", model=testing.small_classifier()
    )
    images = image_pipeline_input(spark, out)
    fitted = Pipeline(stages=[stage]).fit(images)
    fitted.write().overwrite().save(str(out / "pipeline"))
    scores = image_scores(fitted, images)
    (out / "pipeline-scores.json").write_text(json.dumps(scores))
    return {"images": len(scores)}


def section_load(spark: Any, out: Path) -> dict:
    from pyspark.ml import PipelineModel

    loaded = PipelineModel.load(str(out / "pipeline"))
    scores = image_scores(loaded, image_pipeline_input(spark, out))
    return {"scores": scores, "stages": [type(s).__name__ for s in loaded.stages]}


def gpu_probe(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Per task: its Spark GPU addresses, and the GPU sparkonnx's planning gives 'cuda'."""
    import os

    from pyspark import TaskContext

    from sparkonnx.spark_api.runtime.executor import InferencePlan, task_settings
    from sparkonnx.spark_api.runtime.model_ref import ModelRef

    ctx = TaskContext.get()
    gpu = ctx.resources().get("gpu")
    plan = InferencePlan(ModelRef("probe"), inputs=(), outputs=(), batch_size=1)
    cuda, _ = task_settings(dataclasses.replace(plan, device="cuda"))
    auto, _ = task_settings(plan)  # logs the CPU fallback, naming the GPU, once per worker
    fact = {
        "partition": ctx.partitionId(),
        "stage": ctx.stageId(),
        "pid": os.getpid(),
        "addresses": list(gpu.addresses) if gpu is not None else [],
        "cuda_device_id": cuda.cuda_device_id,
        "cuda_options": dict(cuda.providers[0][1]),
        "auto_device": auto.device,
    }
    for _ in batches:
        pass
    yield pa.RecordBatch.from_pylist([{"fact": json.dumps(fact)}])


def probe_gpus(df: Any, **profile: Any) -> list[dict]:
    rows = df.mapInArrow(gpu_probe, "fact string", **profile).collect()
    return sorted((json.loads(r.fact) for r in rows), key=lambda f: f["partition"])


def section_gpu(spark: Any, out: Path) -> dict:
    """spark.task.resource.gpu.amount=1: every task holds one of its executor's 2 fake GPUs."""
    from sparkonnx import ONNXTransformer

    tasks = probe_gpus(spark.range(0, 8, 1, 8))
    model = testing_mlp()
    frame = tensor_frame(spark, rows=400, partitions=4)
    auto = ONNXTransformer(model=model, inputCol="x", outputCol="y", device="auto")
    rows = auto.transform(frame).select("id", "y").orderBy("id").collect()
    np.save(out / "gpu-auto-y.npy", np.array([r.y for r in rows], np.float32))
    np.save(out / "gpu-reference.npy", local_reference(model, frame))
    cuda = ONNXTransformer(model=model, inputCol="x", outputCol="y", device="cuda")
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    driver_error = _error_of(lambda: cuda.transform(frame))  # refused before any job
    jobs_after = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    spark.conf.set("spark.sparkonnx.deviceCheck", "false")  # now the tasks find out
    cuda_error = _error_of(lambda: cuda.transform(frame).collect())
    spark.conf.unset("spark.sparkonnx.deviceCheck")
    return {
        "app": spark.sparkContext.applicationId,
        "tasks": tasks,
        "driver_error": driver_error,
        "jobs_for_driver_check": jobs_after - jobs_before,
        "cuda_error": cuda_error,
    }


def _error_of(action: Any) -> str | None:
    """`type: message` of what `action()` raised, None when it ran."""
    try:
        action()
    except Exception as exc:  # a DeviceError on the driver, or the task's wrapped by Spark
        return f"{type(exc).__name__}: {exc}"
    return None


def testing_mlp() -> Any:
    from sparkonnx import testing

    return testing.mlp((SHIPPED_WIDTHS[0], 16, 4), seed=5)


def section_profile(spark: Any, out: Path) -> dict:
    """No task GPU by default; the example's ResourceProfile gives the scoring stage's tasks one."""
    from sparkonnx import ImageTransformer, testing

    example = load_example("gpu_stage_profile")
    images = image_pipeline_input(spark, out)
    decode_tasks = probe_gpus(images.repartition(2))
    score_tasks = probe_gpus(images.repartition(2), profile=example.gpu_task_profile())
    stage = ImageTransformer(
        inputCol="image", outputCol="probabilities", model=testing.small_classifier()
    )
    folder = str(out / "images")
    rows = example.decode_then_score(spark, folder, stage, partitions=2).collect()
    return {
        "app": spark.sparkContext.applicationId,
        "decode_tasks": decode_tasks,
        "score_tasks": score_tasks,
        "scores": {r.path.rsplit("/", 1)[-1]: list(r.probabilities) for r in rows},
        "plain_scores": image_scores(stage, images),
    }


def load_example(name: str) -> Any:
    """A script of examples/ as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"sparkonnx_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SECTIONS: dict[str, Callable[[Any, Path], dict]] = {
    "ship": section_ship,
    "kill": section_kill,
    "save": section_save,
    "load": section_load,
    "gpu": section_gpu,
    "profile": section_profile,
}

#: CUDA provider options the GPU application gives its executors (their environment).
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}

#: The application conf a section needs; one driver process runs sections of one conf (and
#: any sections that need none).
GPU_EXECUTORS = {"spark.executor.resource.gpu.amount": "2"}
SECTION_CONF: dict[str, dict[str, str]] = {
    "gpu": {
        **GPU_EXECUTORS,
        "spark.task.resource.gpu.amount": "1",
        "spark.task.maxFailures": "1",  # device='cuda' fails once, not four times
        "spark.executorEnv.SPARKONNX_CUDA_OPTIONS": json.dumps(CUDA_OPTIONS),
    },
    "profile": GPU_EXECUTORS,
}


def main(argv: list[str]) -> int:
    master, out, *names = argv
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    confs = {json.dumps(SECTION_CONF[n], sort_keys=True) for n in names if n in SECTION_CONF}
    if len(confs) > 1:  # a second SparkContext in one process keeps the first one's conf
        raise SystemExit(f"sections {names} need different application confs: run them apart")
    conf = json.loads(confs.pop()) if confs else {}
    spark = session(master, "sparkonnx-cluster-" + "-".join(names), conf)
    failed = 0
    for name in names:
        try:
            result = SECTIONS[name](spark, out_dir)
        except Exception:
            result, failed = {"error": traceback.format_exc()}, failed + 1
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
