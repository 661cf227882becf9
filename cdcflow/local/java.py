"""The Java 17 runtime the JVM services run on, and their shared JVM options."""

import glob
import os
from pathlib import Path

from cdcflow.local.errors import ToolMissing

# Debian's OpenJDK 17. Other JDKs on the machine (a newer Temurin, say) are not what
# Debezium 3.1 and Kafka 3.9 are tested on, so they are only used when asked for.
JAVA_HOME_GLOB = "/usr/lib/jvm/java-17-openjdk-*"
JAVA_HOME_VARIABLE = "CDCFLOW_JAVA_HOME"

# A serial collector needs no background GC threads on a two-core machine shared with the tests.
COMMON_JVM_OPTIONS = ("-XX:+UseSerialGC", "-Djava.awt.headless=true", "-Dfile.encoding=UTF-8")


def java_home() -> Path:
    """The Java 17 home: $CDCFLOW_JAVA_HOME, else Debian's openjdk-17. Raises ToolMissing."""
    if configured := os.environ.get(JAVA_HOME_VARIABLE):
        home = Path(configured)
        if not (home / "bin" / "java").is_file():
            raise ToolMissing(f"{JAVA_HOME_VARIABLE}={configured} has no bin/java")
        return home
    for candidate in sorted(glob.glob(JAVA_HOME_GLOB)):
        if (Path(candidate) / "bin" / "java").is_file():
            return Path(candidate)
    raise ToolMissing(
        f"Java 17 not found ({JAVA_HOME_GLOB}): run scripts/bootstrap "
        "(apt-get install openjdk-17-jdk-headless) or set CDCFLOW_JAVA_HOME"
    )


def java() -> str:
    return str(java_home() / "bin" / "java")


def javac() -> str:
    """The Java compiler of the same JDK. Raises ToolMissing when only a JRE is installed."""
    path = java_home() / "bin" / "javac"
    if not path.is_file():
        raise ToolMissing(
            f"javac not found in {path.parent}: run scripts/bootstrap (apt-get install openjdk-17-jdk-headless)"
        )
    return str(path)
