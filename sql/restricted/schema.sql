-- Restricted zone (raw.duckdb): the only place raw personal data exists.
-- raw_* tables are created by ingest from the policy; these are the zone's bookkeeping tables.

-- Every distinct raw identifier value seen, its normalized form (or why it has none), and its pseudonym.
-- Staging joins this once per identifier column; the PII gate's canary check joins it too.
create table if not exists id_map (
    kind        varchar not null,
    raw_value   varchar not null,
    normalized  varchar,          -- null when the value failed normalization
    error       varchar,          -- why it failed (never contains the value)
    pseudonym   varchar,
    key_version integer,
    country     varchar,          -- ip only: ISO country from the offline lookup
    prefix      varchar,          -- ip only: the /24 or /48 network (restricted, like the ip)
    prefix_pid  varchar           -- ip only: pseudonym of the /24 or /48 network
);

-- The raw identifier dictionary: one pseudonym per distinct normalized value and kind.
create table if not exists pseudonyms (
    kind        varchar not null,
    normalized  varchar not null,
    pseudonym   varchar not null,
    key_version integer not null
);

-- User agents, parsed once per distinct string.
create table if not exists ua_map (
    raw_value      varchar not null,
    device_type    varchar,
    os_family      varchar,
    browser_family varchar
);

-- Daily visitor salts (random, never derived from the master key): the HMAC pads of each day's salt.
-- Deleting a day's row makes that day's visitor hashes unlinkable for good.
create table if not exists visitor_salt (
    day        date not null,
    ipad       blob not null,
    opad       blob not null,
    created_at timestamp not null
);

-- Rows that failed validation, with where they came from and why. Restricted: the payload may hold PII.
create table if not exists quarantine (
    source      varchar not null,
    _dt         date not null,
    _file       varchar not null,
    _line       bigint not null,
    reason      varchar not null,
    payload     varchar,
    quarantined_at timestamp not null
);

-- One row per ingest of a (source, day): what was read, loaded and quarantined.
create table if not exists ingest_log (
    source       varchar not null,
    _dt          date not null,
    files        integer not null,
    rows_read    bigint not null,
    rows_loaded  bigint not null,
    rows_quarantined bigint not null,
    rows_suppressed  bigint not null,
    ingested_at  timestamp not null
);

-- Identifiers mentioned inside free text (a phone number typed into a chat message): which row mentions
-- which identifier. Erasure deletes every row that mentions its subject.
create table if not exists text_mentions (
    source    varchar not null,
    _dt       date not null,
    _file     varchar not null,
    _line     bigint not null,
    kind      varchar not null,
    raw_value varchar not null
);

-- Deletion requests. No raw identifier is ever stored here: only pseudonyms and a blind index.
create table if not exists tombstones (
    request_id    varchar not null,
    received_at   timestamp not null,
    requester     varchar not null,
    id_kind       varchar not null,
    deadline      timestamp not null,
    status        varchar not null,      -- pending, propagated, verified
    propagated_at timestamp,
    verified_at   timestamp
);

-- The subject's identifiers: seeded at intake, expanded by resolution. pseudonym is the analytics
-- pseudonym (active key version); blind is HMAC under the separate tombstone key, which does not rotate
-- with the pseudonym key, so late arrivals are recognised across key rotations.
create table if not exists tombstone_subjects (
    request_id  varchar not null,
    kind        varchar not null,
    pseudonym   varchar,
    key_version integer,
    blind       varchar not null
);

-- Append-only, hash-chained evidence: each record carries the hash of the previous one.
create table if not exists erasure_evidence (
    seq          bigint not null,
    request_id   varchar not null,
    event        varchar not null,      -- registered, removed, verified_rows, verified_bytes, suppressed, rewritten
    layer        varchar,
    location     varchar,
    rows_removed bigint,
    check_result bigint,
    detail       varchar,
    recorded_at  timestamp not null,
    prev_hash    varchar not null,
    hash         varchar not null
);
