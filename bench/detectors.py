"""Detector recall and false positives on the table of real-world forms (tests/data/detector_corpus.yaml),
per kind, for the detectors as they are and, for comparison, for the SQL detectors this project had before
(read from git history, commit 0b68702). Plus false positives on everything the pipeline itself writes
where a detector looks: every distinct text value of a published demo build and every line of its task logs.

    .venv/bin/python bench/detectors.py [--home data]
"""

from __future__ import annotations

import argparse
import subprocess
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "0b68702"
OLD_KINDS = {"email": "email", "ipv4": "ipv4", "ipv6": "ipv6", "phone": "phone", "thai_national_id": "thai_national_id",
             "payment_card": "payment_card", "line_user_id": "line_user_id", "user_agent": "user_agent"}


def old_detector():
    """The SQL detectors of the previous version, as a function text -> kinds (None if git is unavailable)."""
    try:
        sql = subprocess.run(["git", "show", f"{OLD_COMMIT}:sql/gate/detectors.sql"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    import duckdb

    con = duckdb.connect()
    for stmt in sql.split(";\n"):
        code = [line for line in stmt.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
        if code:
            con.execute(stmt)
    return lambda text: set(con.execute("select pii_kinds($t, 1000000)", {"t": text}).fetchone()[0]) - {"too_long"}


def measure(detect, corpus) -> tuple[dict, int, list]:
    per_kind = {}
    for kind, texts in corpus["positives"].items():
        found = sum(1 for t in texts if kind in detect(t))
        per_kind[kind] = (found, len(texts))
    fps = [t for t in corpus["negatives"] if detect(t)]
    return per_kind, len(corpus["negatives"]), fps


def pipeline_texts(home: Path) -> list[str]:
    """Every distinct text value of the published database and every task-log line of a data directory."""
    import duckdb

    texts = []
    db = home / "analytics" / "analytics.duckdb"
    if db.exists():
        con = duckdb.connect(str(db), read_only=True)
        for t, c in con.execute("select table_name, column_name from duckdb_columns() where data_type = 'VARCHAR' and not internal "
                                      "and database_name = current_database()").fetchall():
            texts += [v for (v,) in con.execute(f'select distinct "{c}" from "{t}" where "{c}" is not null').fetchall()]
        con.close()
    for f in (home / "airflow" / "logs").rglob("*.log"):
        texts += [line for line in f.read_text(errors="replace").splitlines() if line.strip()]
    return texts


def main() -> None:
    import os

    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default=os.environ.get("PLUS_ANALYTICS_HOME", "data"))
    args = ap.parse_args()
    os.environ.setdefault("PLUS_ANALYTICS_HOME", args.home)
    from plus_analytics.gate.detectors import detect

    corpus = yaml.safe_load((ROOT / "tests" / "data" / "detector_corpus.yaml").read_text(encoding="utf-8"))
    rows = {"now": measure(lambda t: detect(t, max_len=None), corpus)}
    old = old_detector()
    if old:
        rows[f"before ({OLD_COMMIT})"] = measure(old, corpus)
    kinds = list(corpus["positives"])
    print(f"{'detectors':24s} " + " ".join(f"{k[:12]:>13s}" for k in kinds) + f" {'recall':>8s} {'false pos.':>11s}")
    for name, (per_kind, n_neg, fps) in rows.items():
        found = sum(f for f, _ in per_kind.values())
        total = sum(n for _, n in per_kind.values())
        cells = " ".join(f"{f:>6d}/{n:<6d}" for f, n in per_kind.values())
        print(f"{name:24s} {cells} {found / total:8.1%} {len(fps):>5d}/{n_neg:<5d}")
    for name, (_, _, fps) in rows.items():
        if fps:
            print(f"  {name} flags: {fps}")
    texts = pipeline_texts(Path(args.home))
    if texts:
        flagged = defaultdict(int)
        examples: dict[str, str] = {}
        for t in texts:
            for k in detect(t, max_len=None):
                flagged[k] += 1
                examples.setdefault(k, t)
        print(f"pipeline's own text ({len(texts):,} distinct mart values and task-log lines under {args.home}): "
              f"{sum(flagged.values())} flagged {dict(flagged)}")


if __name__ == "__main__":
    main()
