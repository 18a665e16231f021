"""CSV records and the landing lines they span, counted the one way every part of the pipeline counts them.

A line ends at ``\\n`` and nowhere else: that is how ingest numbers a record (``_line``), how erasure finds
it again, and how the landing rewrite blanks it. (Python's own line reading also ends a line at a lone
``\\r``, so a value holding one would shift the numbers of every later record, and an erasure would blank
someone else's line.) A record spans more than one line when a quoted value holds a line break: erasure
blanks or redacts all of them. A record the CSV reader rejects (a line break in an unquoted value, a
value over the reader's size limit) is reported with its lines and a reason that names no value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: The longest value the reader takes (its default is 128 KiB); a longer one rejects its record. Set here,
#: where every reader of landing CSV gets it, so ingest and the landing rewrite see the same records.
csv.field_size_limit(10_000_000)


@dataclass(frozen=True)
class Record:
    first: int  # 1-based line numbers, inclusive
    last: int
    fields: list[str] | None  # None: the reader rejected the record
    error: str | None = None


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its ``\\n`` (the last one without, if the text does not end in one)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def records(lines: Iterable[str], first_line: int = 1) -> Iterator[Record]:
    """The records of ``lines`` (from :func:`split_lines`, or any run of them starting at a record),
    numbered from ``first_line``."""
    reader = csv.reader(iter(lines))
    done = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = "a line break in an unquoted value" if "new-line" in str(exc) else \
                "a value longer than the CSV reader's limit" if "field limit" in str(exc) else "not readable as CSV"
            yield Record(first_line + done, first_line + reader.line_num - 1, None, f"malformed CSV record: {why}")
        else:
            yield Record(first_line + done, first_line + reader.line_num - 1, fields)
        done = reader.line_num
