"""The plain-SQL peer (bench/plain_sql_peer.sql) as one function: landing files in, a DuckDB file of marts
out. The headline ratio of the scale benchmark is our pipeline's time over this one's, on the same files
in the same run.

    .venv/bin/python bench/plain_sql_peer.py <landing dir> <out.duckdb>
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb

SQL = Path(__file__).with_name("plain_sql_peer.sql")


def run(landing: Path, out: Path, key: str = "peer-benchmark-key", memory_limit: str | None = None) -> dict:
    """Run the peer; returns its seconds and the row count of each mart."""
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    con = duckdb.connect(str(out))
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute("set variable key = ?", [key])
    for stmt in SQL.read_text().replace("{landing}", str(landing)).split(";\n"):
        if any(line.strip() and not line.strip().startswith("--") for line in stmt.splitlines()):
            con.execute(stmt)
    con.execute("checkpoint")
    marts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for (t,) in con.execute(
        "select table_name from duckdb_tables() where table_name like 'mart_%' order by 1").fetchall()}
    con.close()
    return {"seconds": time.perf_counter() - t, "marts": marts}


if __name__ == "__main__":
    print(run(Path(sys.argv[1]), Path(sys.argv[2])))
