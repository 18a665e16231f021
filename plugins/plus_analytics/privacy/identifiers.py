"""The restricted zone's identifier maps, kept up to date set-wise, and the key they were made with.

A batch of ingest gathers its candidate raw values in the session (:func:`batch_dictionary`,
:func:`add_values`), reads what the maps already hold of them (:func:`read_known`, under the zone's read
lock), learns the rest without any lock (:func:`learn`: normalized once per distinct value, canonical
platform ids by a pattern in SQL, everything else in Python; pseudonyms computed inside DuckDB with the
in-SQL HMAC, once per distinct *normalized* value), and publishes what the maps lack with the write lock
held (:func:`publish`). Rows of data are never touched by Python: staging joins these maps.

``check_key`` compares the key in use with the key the zone was written with (version and check value)
before anything is written: a lost or replaced key stops the run instead of silently producing
pseudonyms that no longer match (which would, for instance, make an erasure find nothing).
"""

from __future__ import annotations

import datetime as dt
import secrets

import pandas as pd

from plus_analytics.policy import KINDS, REDACTED, Source
from plus_analytics.privacy.keys import KeyMismatch, MasterKey, hmac_pads
from plus_analytics.privacy.lookups import ip_country, parse_user_agent
from plus_analytics.privacy.normalize import CANONICAL_PLATFORM_ID, InvalidIdentifier, ip_prefix, normalize, normalized_elsewhere
from plus_analytics.storage import sql as sqlf
from plus_analytics.storage.duck import insert_rows, transaction, with_frame

SQL = "restricted/identifiers.sql"


class KeyVersionMismatch(KeyMismatch):
    """The restricted zone holds pseudonyms of another key version: run the key rotation first."""


def ensure_schema(con) -> None:
    sqlf.run_file(con, "restricted/schema.sql")


def register_key(con, key: MasterKey) -> None:
    """Bind the per-kind HMAC pads into a TEMP table (never persisted) and define the HMAC macros."""
    sqlf.run_file(con, "macros.sql")
    sqlf.run(con, SQL, "key_table")
    rows = [(kind, key.version, *key.pads(kind)) for kind in KINDS]
    con.executemany(sqlf.named(SQL, "key_insert"), rows)


def check_key(con, database: str, key: MasterKey, purpose: str = "pseudonym", rotating: bool = False,
              register: bool = True) -> None:
    """Refuse a key that is not the one ``database``'s ``purpose`` values were made with; remember the key
    on first use (unless ``register`` is false: a read-only check). With ``rotating``, a newer version is
    accepted (the caller re-keys) and recorded."""
    row = sqlf.run(con, SQL, "last_key", {"purpose": purpose}, db=database).fetchall()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if row:
        version, check = row[0]
        if version == key.version and check != key.check_value():
            raise KeyMismatch(
                f"the {purpose} key of version {key.version} is not the key this data was written with (its check "
                f"value differs): the key was lost or replaced. Restore the original key (backup or secrets "
                f"backend); a new key would silently break every {purpose} already stored")
        if version > key.version:
            raise KeyMismatch(f"the {purpose} key in use is version {key.version} but the data was written with "
                              f"version {version}: configure the current key")
        if version < key.version and not rotating:
            raise KeyVersionMismatch(
                f"the restricted zone holds {purpose}s of key version {version} but the active key is version "
                f"{key.version}: run the key rotation (plus-analytics rotate-keys, or the plus_rotate_keys DAG) "
                f"before ingesting more data")
        if version == key.version:
            return
    if register:
        sqlf.run(con, SQL, "register_key", {"purpose": purpose, "version": key.version, "check": key.check_value(), "at": now},
                 db=database)


def check_key_version(con, key: MasterKey) -> None:
    """Pseudonyms of another version than ``key``'s: rotation has not run (or not finished)."""
    other = sqlf.run(con, SQL, "other_versions", {"version": key.version}).fetchall()
    if other:
        raise KeyVersionMismatch(
            f"the restricted zone holds pseudonyms of key version(s) {[v for (v,) in other]} but the active key "
            f"is version {key.version}: run the key rotation (plus-analytics rotate-keys, or the "
            f"plus_rotate_keys DAG) before ingesting more data")


def _normalize_frame(kind: str, values: list[str]) -> pd.DataFrame:
    rows = []
    for v in values:
        norm = err = country = prefix = None
        try:
            norm = normalize(kind, v)
            if kind == "ip":
                country, prefix = ip_country(norm), ip_prefix(norm)
        except InvalidIdentifier as exc:
            err = str(exc)
        rows.append((kind, v, norm, err, country, prefix))
    return pd.DataFrame(rows, columns=["kind", "raw_value", "normalized", "error", "country", "prefix"], dtype=object)


def batch_dictionary(con) -> None:
    """The session's empty dictionary of a batch: its candidate values (``_batch_values``, ``_batch_uas``)
    and what is known or learned of them (``_ids``, ``_uas``, with the maps' columns)."""
    sqlf.run(con, SQL, "batch_tables")


def add_values(con, kind: str, values_sql: str) -> None:
    """The raw values of ``values_sql`` (one column ``v``) are candidates of ``kind``."""
    sqlf.run(con, SQL, "add_values", {"kind": kind, "redacted": REDACTED}, values_sql=values_sql)


def add_user_agents(con, values_sql: str) -> None:
    sqlf.run(con, SQL, "add_user_agents", values_sql=values_sql)


def read_known(con) -> None:
    """What the maps (``raw``, attached at least read-only) already hold of the batch's candidates."""
    sqlf.run(con, SQL, "known_ids")
    sqlf.run(con, SQL, "known_user_agents")


def learn(con) -> int:
    """Every candidate the batch's dictionary does not hold yet normalized and pseudonymized (the key
    registered with :func:`register_key`), user agents parsed; all in the session, no zone needed. Returns
    how many identifiers were new."""
    new = sum(_learn_kind(con, kind) for (kind,) in sqlf.run(con, SQL, "batch_kinds").fetchall())
    _learn_user_agents(con)
    return new


def _learn_kind(con, kind: str) -> int:
    """Platform ids already in canonical form (nearly all of them) are settled in SQL; the rest go through
    :func:`~plus_analytics.privacy.normalize.normalize` in Python, once per distinct value."""
    sqlf.run(con, SQL, "new_values", {"kind": kind})
    sqlf.run(con, SQL, "new_ids_table")
    params = {"in_sql": not normalized_elsewhere(kind), "canonical": CANONICAL_PLATFORM_ID}
    sqlf.run(con, SQL, "new_ids_canonical", {"kind": kind, **params})
    rest = [r[0] for r in sqlf.run(con, SQL, "new_values_for_python", params).fetchall()]
    if rest:
        with_frame(con, "_new_ids_frame", _normalize_frame(kind, rest), sqlf.named(SQL, "insert_new_ids_frame"))
    new = sqlf.run(con, SQL, "new_ids_count").fetchone()[0]
    if new:
        if kind == "ip":
            _pseudonymize(con, "ip_prefix", "select distinct prefix as normalized from _new_ids where prefix is not null")
        _pseudonymize(con, kind, "select distinct normalized from _new_ids where normalized is not null")
        sqlf.run(con, SQL, "insert_new_ids")
    sqlf.run(con, SQL, "drop_new_ids")
    return new


def _pseudonymize(con, kind: str, normalized_sql: str) -> None:
    """HMAC each new distinct normalized value once, inside DuckDB."""
    sqlf.run(con, SQL, "pseudonymize", {"kind": kind}, normalized_sql=normalized_sql)


def _learn_user_agents(con) -> int:
    new = [r[0] for r in sqlf.run(con, SQL, "new_user_agents").fetchall()]
    if not new:
        return 0
    frame = pd.DataFrame([(v, *parse_user_agent(v)) for v in new],
                         columns=["raw_value", "device_type", "os_family", "browser_family"])
    with_frame(con, "_new_uas", frame, sqlf.named(SQL, "insert_user_agents"))
    return len(new)


def publish(con) -> None:
    """The batch's dictionary into the maps (``raw`` attached read-write, its lock held): what they do not
    hold yet. Pseudonyms are keyed and deterministic, so two batches that learned the same value at once
    publish the same row, and the later finds it there."""
    for name in ("publish_ids", "publish_pseudonyms", "publish_user_agents"):
        sqlf.run(con, SQL, name)


def drop_batch_dictionary(con) -> None:
    sqlf.run(con, SQL, "drop_batch_tables")


def ensure_visitor_salts(con, days: list[dt.date]) -> None:
    """A fresh random salt for each event day that has none (never derived from the master key)."""
    have = {r[0] for r in sqlf.run(con, SQL, "salted_days").fetchall()}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [(day, *hmac_pads(secrets.token_bytes(32)), now) for day in sorted(set(days) - have)]
    insert_rows(con, "raw.visitor_salt", rows)


def rekey(con, key: MasterKey) -> dict:
    """Re-pseudonymize the whole dictionary under ``key`` (rotation), in one transaction.

    Only normalized values are needed, never the old key: the old pseudonyms are replaced, so staging and
    marts rebuilt afterwards carry the new version only. Deletion requests in progress recompute their
    subjects' pseudonyms from their sealed normalized forms, so they need nothing from here.
    """
    register_key(con, key)
    with transaction(con):
        before = sqlf.run(con, SQL, "pseudonyms_by_version").fetchall()
        check_key(con, "raw", key, rotating=True)
        sqlf.run(con, SQL, "rekeyed")
        sqlf.run(con, SQL, "replace_pseudonyms")
        sqlf.run(con, SQL, "insert_rekeyed")
        sqlf.run(con, SQL, "apply_rekey")
        sqlf.run(con, SQL, "apply_rekey_prefix")
    return {"before": before, "after_version": key.version}


def collect_orphans(con, sources: list[Source]) -> None:
    """Drop every identifier (and pseudonym, and IP prefix) that no row of the zone refers to any more."""
    refs = " union ".join(
        f"select '{c.kind}' as kind, {sqlf.q(c.name)} as v from lake.{s.raw_table}" for s in sources for c in s.identifier_columns)
    sqlf.run(con, SQL, "orphans", refs_sql=refs)
    for name in ("delete_orphan_ids", "delete_orphan_pseudonyms", "delete_orphan_prefixes"):
        sqlf.run(con, SQL, name)
