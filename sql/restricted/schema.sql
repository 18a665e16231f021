-- Restricted zone (raw.duckdb): the only place raw personal data exists.
-- raw_* tables are created by ingest from the policy; these are the zone's bookkeeping tables.

-- Every distinct raw identifier value seen, its normalized form (or why it has none), and its pseudonym.
-- Staging joins this once per identifier column; the PII gate's canary check joins it too.
create table if not exists raw.id_map (
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
create table if not exists raw.pseudonyms (
    kind        varchar not null,
    normalized  varchar not null,
    pseudonym   varchar not null,
    key_version integer not null
);

-- User agents, parsed once per distinct string.
create table if not exists raw.ua_map (
    raw_value      varchar not null,
    device_type    varchar,
    os_family      varchar,
    browser_family varchar
);

-- Daily visitor salts (random, never derived from the master key): the HMAC pads of each day's salt.
-- Deleting a day's row makes that day's visitor hashes unlinkable for good.
create table if not exists raw.visitor_salt (
    day        date not null,
    ipad       blob not null,
    opad       blob not null,
    created_at timestamp not null
);

-- Rows that failed validation are in each source's Delta table quarantine_<source> beside this file
-- (plus_analytics.storage.lake; the view lake.quarantine shows them all).

-- One row per ingest of a (source, day): what was read, loaded and quarantined.
create table if not exists raw.ingest_log (
    source       varchar not null,
    _dt          date not null,
    files        integer not null,
    rows_read    bigint not null,
    rows_loaded  bigint not null,
    rows_quarantined bigint not null,
    rows_suppressed  bigint not null,
    ingested_at  timestamp not null
);

-- Per source, day and column: how many rows each problem sent to quarantine (the engineers' quality
-- report). Problems name the column and the rule, never a value.
create table if not exists raw.ingest_column_log (
    source      varchar not null,
    _dt         date not null,
    col         varchar not null,
    problem     varchar not null,
    rows_quarantined bigint not null,
    ingested_at timestamp not null
);

-- Identifiers mentioned inside free text (a phone number typed into a chat message), which row mentions
-- which: each source's Delta table mentions_<source> (lake.text_mentions shows them all). Erasure deletes
-- every row that mentions its subject.

-- The key the pseudonyms of this zone were made with: its version and a check value (HMAC of a fixed
-- label under the key, never the key). A run whose key does not match stops before it writes anything.
create table if not exists raw.key_registry (
    purpose     varchar not null,     -- pseudonym, tombstone
    key_version integer not null,
    check_value varchar not null,
    registered_at timestamp not null
);

-- Keys of parent rows erased (by an erasure's removal) or dropped at ingest as late arrivals, as a blind
-- index under the tombstone key: a child row that arrives later (a message of an erased conversation) is
-- dropped at ingest too. Machine keys only, never readable without the key.
create table if not exists raw.erased_row_keys (
    request_id varchar not null,
    source     varchar not null,
    blind      varchar not null
);

-- Late arrivals of erased subjects dropped at ingest, written in the same transaction that drops them;
-- copied into the privacy ledger's evidence chain (once each) by the next writer of the ledger.
create table if not exists raw.suppression_log (
    suppression_id varchar not null,
    request_id     varchar not null,
    source         varchar not null,
    _dt            date not null,
    rows_dropped   bigint not null,
    recorded_at    timestamp not null
);

-- Retention's evidence, written in the same transaction as what it destroyed (landing partitions, rows,
-- columns, quarantine, salts); copied into the privacy ledger once each by the next writer of the ledger.
create table if not exists raw.retention_log (
    log_id         varchar not null,
    run_id         varchar not null,
    as_of          date not null,
    layer          varchar not null,
    location       varchar not null,
    day            date,
    rule           varchar not null,
    rows_destroyed bigint not null,
    destroyed_at   timestamp not null
);

-- Retention's destructions of rows (the sources' Delta tables) decided and recorded, not yet carried out:
-- written in the transaction of their evidence, carried out after it commits, removed once done. A run that
-- died in between is finished by the next before it decides anything, so every destruction has its evidence
-- and none is recorded twice. columns: null destroys the day's rows; else those columns are nulled.
create table if not exists raw.retention_pending (
    table_name varchar not null,
    day        date not null,
    columns    varchar[]
);
