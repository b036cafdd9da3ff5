"""One local[2] SparkSession for every Spark test, started and stopped here.

Skipped (with the reason) only when Java or pyspark is absent; with CI=true or
MFREC_REQUIRE_DATA=1 (as `.ci/run` sets) their absence is a failure instead."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def _strict() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("MFREC_REQUIRE_DATA", ""))
    return any(f.lower() not in ("", "0", "false", "no") for f in flags)


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _unavailable(reason: str) -> None:
    if _strict():
        pytest.fail(reason + " (CI=true / MFREC_REQUIRE_DATA=1 turn this skip into a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    if _java() is None:
        _unavailable("Spark tests need Java 17+ (no `java` on PATH and no JAVA_HOME): "
                     "apt-get install openjdk-17-jre-headless")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _unavailable("Spark tests need pyspark: pip install -e '.[spark]'")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers import mfrec from this venv
    session = (SparkSession.builder.master("local[2]").appName("mfrec-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.default.parallelism", "2")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("spark-checkpoints")))
    yield session
    session.stop()
