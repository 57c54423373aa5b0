"""Which kind of Spark session is at hand (classic or Spark Connect), and the modules for it.

One rule everywhere: the kind comes from the session object at hand (a DataFrame's
``sparkSession``, or the session the user passed), never from the process environment.
``pyspark.sql.functions`` and ``pandas_udf`` pick classic or Connect from the environment
(``is_remote()``), which is wrong when one process holds both kinds of session. Only where no
session is given at all does `active_session` look one up: the classic active session first,
then the Spark Connect one.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def is_connect(spark: Any) -> bool:
    """True for a Spark Connect session or DataFrame (no sparkContext, no JVM access)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def session_key(spark: Any) -> str:
    """A string naming this session for per-session caches: its Connect session id, or its
    classic application id."""
    if is_connect(spark):
        return f"connect:{spark.session_id}"
    return f"classic:{spark.sparkContext.applicationId}"


_parallelism: dict[str, int] = {}


def default_parallelism(spark: Any) -> int:
    """How many tasks the session runs at once by default: classic Spark's
    `defaultParallelism`; on Connect the partitions of a default `spark.range` (one tiny job,
    remembered per session)."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    key = session_key(spark)
    if key not in _parallelism:
        F = sql_functions(spark)
        (row,) = (
            spark.range(0, 1 << 16)
            .select(F.spark_partition_id().alias("p"))
            .agg(F.max("p").alias("top"))
            .collect()
        )
        _parallelism[key] = int(row["top"]) + 1
    return _parallelism[key]


def active_session(spark: Any = None, hint: str = "pass spark=<session>") -> Any:
    """`spark` when given; else the active classic session, else the active Connect one.

    Raises a RuntimeError saying how to fix it when there is none; `hint` names the argument
    of the caller that takes a session.
    """
    if spark is not None:
        return spark
    from pyspark.sql import SparkSession

    session: Any = SparkSession.getActiveSession()
    if session is None:
        try:
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            session = ConnectSession.getActiveSession()
        except ImportError:  # the connect extra is not installed
            session = None
    if session is None:
        raise RuntimeError(
            f"no active SparkSession: create one first, or {hint} "
            "(a classic or a Spark Connect session)"
        )
    return session


def sql_functions(spark_or_dataset: Any) -> ModuleType:
    """`pyspark.sql.functions` for the kind of session `spark_or_dataset` is (or belongs to)."""
    if is_connect(spark_or_dataset):
        from pyspark.sql.connect import functions as connect_functions

        return connect_functions
    from pyspark.sql import functions as classic_functions

    return classic_functions


def vector_to_array(spark_or_dataset: Any) -> Any:
    """`pyspark.ml.functions.vector_to_array` for the session kind of `spark_or_dataset`."""
    if is_connect(spark_or_dataset):
        from pyspark.ml.connect import functions as ml_connect

        return ml_connect.vector_to_array
    from pyspark.ml import functions as ml_classic

    return ml_classic.vector_to_array


def array_to_vector(spark_or_dataset: Any) -> Any:
    """`pyspark.ml.functions.array_to_vector` for the session kind of `spark_or_dataset`."""
    if is_connect(spark_or_dataset):
        from pyspark.ml.connect import functions as ml_connect

        return ml_connect.array_to_vector
    from pyspark.ml import functions as ml_classic

    return ml_classic.array_to_vector


def python_udf(spark_or_dataset: Any, fn: Any, return_type: Any, eval_type: int) -> Any:
    """A Python UDF of `eval_type` (a `PythonEvalType`) built for the session's kind.

    `pandas_udf` / `arrow_udf` build for the environment's kind; this builds for the kind of
    the session the UDF will run in.
    """
    if is_connect(spark_or_dataset):
        from pyspark.sql.connect.udf import UserDefinedFunction as ConnectUDF

        return ConnectUDF(fn, returnType=return_type, evalType=eval_type)
    from pyspark.sql.udf import UserDefinedFunction

    return UserDefinedFunction(fn, returnType=return_type, evalType=eval_type)
