-- The privacy ledger (restricted/privacy.duckdb): deletion requests, the steps each has been through, the
-- hash-chained evidence of what was done, and retention evidence. No raw identifier is stored here:
-- pseudonyms, blind indexes, and the subject's identifier forms sealed (AES-GCM under a key derived from
-- the tombstone key) so verification can look for them byte by byte; the sealed forms are deleted once
-- a request is verified.

-- Deletion requests. status is the last step done:
--   pending -> resolved -> selected -> removed -> restaged -> published -> rewritten -> verified | no_data
-- and failed (verification found something: the next run propagates it again from resolve and re-verifies).
create table if not exists ledger.tombstones (
    request_id    varchar not null,
    received_at   timestamp not null,
    requester     varchar not null,
    id_kind       varchar not null,
    deadline      timestamp not null,
    status        varchar not null,
    propagated_at timestamp,          -- when the restricted zone and landing files were cleaned
    verified_at   timestamp,          -- when the last check passed (verified or no_data)
    restaged_version bigint           -- the staging version that no longer holds the subject
);

-- Every step a request has been through, when, and in which run.
create table if not exists ledger.erasure_steps (
    request_id varchar not null,
    step       varchar not null,
    done_at    timestamp not null,
    run_id     varchar
);

-- The subject's identifiers: seeded at intake, expanded by resolution. pseudonym is the analytics
-- pseudonym under key_version (a cache: it is recomputed from the sealed normalized form after a key
-- rotation); blind is HMAC under the tombstone key, which does not rotate, so late arrivals are
-- recognised across rotations; sealed holds the normalized form and every written form, encrypted.
create table if not exists ledger.tombstone_subjects (
    request_id  varchar not null,
    kind        varchar not null,
    pseudonym   varchar,
    key_version integer,
    blind       varchar not null,
    sealed      blob
);

-- What the remove step selected (recorded before anything is deleted, so a run that dies half-way is
-- finished by the next one exactly): rows to delete (with the key staging knows them by), fields to
-- redact, quarantined lines. Locations and machine keys only.
create table if not exists ledger.erasure_rows (
    request_id  varchar not null,
    source      varchar not null,
    _file       varchar not null,
    _line       bigint not null,
    why         varchar not null,
    staging_key varchar
);
-- The restricted zone's ingest log as each request's selection saw it (a digest): the removal tops the
-- selection up when the log differs by then.
create table if not exists ledger.erasure_selected_over (
    request_id   varchar not null,
    ingest_state varchar not null
);
create table if not exists ledger.erasure_redactions (
    request_id varchar not null,
    source     varchar not null,
    _file      varchar not null,
    _line      bigint not null,
    col        varchar not null
);
create table if not exists ledger.erasure_quarantine (
    request_id varchar not null,
    source     varchar not null,
    _dt        date not null,
    _file      varchar not null,
    _line      bigint not null
);

-- Append-only, hash-chained evidence: each record carries the hash of the previous one.
create table if not exists ledger.erasure_evidence (
    seq          bigint not null,
    request_id   varchar not null,
    event        varchar not null,      -- registered, resolved, removed, restaged, published, rewritten, verified_*, suppressed
    layer        varchar,
    location     varchar,
    rows_removed bigint,
    check_result bigint,
    detail       varchar,
    recorded_at  timestamp not null,
    prev_hash    varchar not null,
    hash         varchar not null
);

-- Retention: per run, layer, table and day, what was destroyed and when.
create table if not exists ledger.retention_evidence (
    run_id         varchar not null,
    as_of          date not null,
    layer          varchar not null,
    location       varchar not null,
    day            date,
    rule           varchar not null,
    rows_destroyed bigint not null,
    destroyed_at   timestamp not null
);

-- The tombstone key's version and check value (see restricted/schema.sql, key_registry).
create table if not exists ledger.key_registry (
    purpose     varchar not null,
    key_version integer not null,
    check_value varchar not null,
    registered_at timestamp not null
);

-- Which outbox records (suppression_log, retention_log of the restricted zone and staging) have been
-- copied into the evidence above, so a copy interrupted half-way is finished without duplicates.
create table if not exists ledger.outbox_copied (
    record_id varchar not null,
    copied_at timestamp not null
);
