"""Rewriting landing files in place: blank whole lines (every other row's line number stays valid) and
redact single fields. Used by erasure and by ingest (late arrivals of erased subjects). Each file is
replaced atomically; doing it twice gives the same file, so a run that died half-way is simply redone."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from plus_analytics.policy import REDACTED
from plus_analytics.storage.files import atomic_write_bytes


def _redact_line(text: str, cols: set[str], header: list[str] | None) -> str:
    if header is None:
        obj = json.loads(text)
        for c in cols:
            obj[c] = REDACTED
        return json.dumps(obj, ensure_ascii=False)
    fields = next(csv.reader([text]))
    for c in cols:
        fields[header.index(c)] = REDACTED
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def rewrite_lines(landing: Path, blank: dict[str, set[int]], redact: dict | None = None) -> dict[str, int]:
    """Blank the lines ``blank`` ({file: line numbers}) and set the fields ``redact`` ({file: {line:
    columns}}) to the redaction marker. Files are relative to ``landing``. Returns lines changed per file."""
    redact = redact or {}
    changed = {}
    for f in sorted(set(blank) | set(redact)):
        path = Path(landing) / f
        if not path.exists():
            continue
        lines = path.read_bytes().split(b"\n")
        header = next(csv.reader([lines[0].decode("utf-8", "replace")])) if path.suffix == ".csv" and lines else None
        n = 0
        gone = blank.get(f, set())
        for line_no, cols in redact.get(f, {}).items():
            if line_no not in gone and lines[line_no - 1]:
                lines[line_no - 1] = _redact_line(lines[line_no - 1].decode("utf-8"), set(cols), header).encode("utf-8")
                n += 1
        for line_no in gone:
            if 0 < line_no <= len(lines):
                lines[line_no - 1] = b""
                n += 1
        atomic_write_bytes(path, b"\n".join(lines))
        changed[f] = n
    return changed
