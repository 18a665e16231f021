"""Identifiers typed into free text (a phone number in a chat message), found as written so erasure can
later remove the exact bytes. Candidates come from the shared PII patterns; each is learned like any
identifier (normalized once per distinct value) and only the ones that normalize can match a subject."""

from __future__ import annotations

from plus_analytics.policy import Source
from plus_analytics.policy.patterns import group, mention_patterns
from plus_analytics.privacy import identifiers
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.sql import q

SQL = "ingest/ingest.sql"


def extract_mentions(con, src: Source) -> None:
    """``_mentions`` (_file, _line, kind, v) of the batch's free-text columns, their values candidates of
    the batch's dictionary (:mod:`plus_analytics.privacy.identifiers`)."""
    sqlf.run(con, SQL, "mentions_empty")
    for c in src.free_text_columns:
        for kind, regex in mention_patterns().items():
            sqlf.run(con, SQL, "mentions_insert", {"kind": kind, "regex": regex, "group": group(regex)},
                     column=q("v_" + c.name))
    for kind in mention_patterns():
        identifiers.add_values(con, kind, f"select v from _mentions where kind = '{kind}'")
