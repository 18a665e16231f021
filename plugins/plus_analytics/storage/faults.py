"""Fault injection for the kill tests: with ``PLUS_ANALYTICS_KILL_AT=<point>:<n>`` the process kills itself
(SIGKILL: no cleanup, no finally) the n-th time it reaches ``<point>``. Points: ``commit`` (right after a
transaction commits), ``lake`` (right after a commit to a Delta table of the restricted zone), ``file``
(right after a file is atomically replaced, or the Delta tables purged), ``build`` (right after a mart
build file is complete, before its gate and publish). With
``PLUS_ANALYTICS_FAULT_LOG=<file>`` every point reached is appended to that file, so a test can count
them in an uninterrupted run and choose where to kill. Neither is set in normal runs: then this is a
dictionary lookup per commit."""

from __future__ import annotations

import os
import signal
from collections import Counter

from plus_analytics.config import settings

_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    s = settings()
    if not (s.kill_at or s.fault_log):
        return
    _reached[point] += 1
    if s.fault_log:
        with open(s.fault_log, "a") as fh:
            fh.write(f"{point}\n")
    if s.kill_at == f"{point}:{_reached[point]}":
        os.kill(os.getpid(), signal.SIGKILL)
