"""Running a command as a user's shell would: a new user's environment, a subprocess, its output kept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def user_env(home: Path, port: int | None = None) -> dict[str, str]:
    """What a new user's shell has: this machine's environment without the test run's Airflow, key and
    pipeline settings, plus the data directory and (for ``make airflow``) a free port."""
    env = {k: v for k, v in os.environ.items()  # nor what `make test` passes its children (MAKELEVEL, MAKEFLAGS)
           if not k.startswith(("AIRFLOW", "PLUS_", "GX_", "PYTEST", "_PYTEST", "MAKE", "MFLAGS")) and k != "VIRTUAL_ENV"}
    env["PLUS_ANALYTICS_HOME"] = str(home)
    if port:
        env["PLUS_AIRFLOW_PORT"] = str(port)
    return env


def run(line: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``line`` to its end with no input; a non-zero exit fails the test with the command's output."""
    done = subprocess.run(line, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (f"{' '.join(line)} exited {done.returncode}\n"
                                  f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
    return done
