-- The restricted zone's Delta tables as a session sees them (plus_analytics.storage.lake).

-- name: views_database
-- The session's views of the tables live in a database of their own (names only, never a row).
attach if not exists ':memory:' as {{ lake }}

-- name: view_over_files
-- A snapshot's data files: the day comes from each file's directory (_dt=<day>), as Delta writes them.
-- The list is a session variable, so a commit moves the view to the new snapshot without a catalog change.
create view {{ lake }}.{{ table }} as
select {{ columns }} from read_parquet(getvariable({{ variable }}), hive_partitioning = true, hive_types = {'_dt': date})

-- name: lake_root
-- The data directory whose tables this session's views show (null: none yet).
select getvariable('lake_root')

-- name: set_lake_root
set variable lake_root = $root

-- name: drop_views_database
detach database if exists {{ lake }}

-- name: point_at
set variable {{ variable }} = $files

-- name: view_over_legacy
-- A table of the earlier layout, read where it is (a session that only reads does not move it).
create or replace view {{ lake }}.{{ table }} as select * from raw.{{ table }}

-- name: legacy_columns
select * from raw.{{ table }} limit 0

-- name: legacy_days
select distinct _dt from raw.{{ table }}

-- name: legacy_rows
select * from raw.{{ table }}

-- name: drop_legacy
drop table raw.{{ table }}

-- name: views
select view_name from duckdb_views() where database_name = $database and schema_name = 'main' and not internal

-- name: quarantine_columns
-- A source's quarantined lines (lake.quarantine_<source>): restricted, a line may hold personal values.
select cast(null as date) as _dt, cast(null as varchar) as _file, cast(null as bigint) as _line,
    cast(null as varchar) as reason, cast(null as varchar) as payload, cast(null as timestamp) as quarantined_at limit 0

-- name: mention_columns
-- The identifiers a source's free text mentions, by row (lake.mentions_<source>): restricted, raw values.
select cast(null as date) as _dt, cast(null as varchar) as _file, cast(null as bigint) as _line,
    cast(null as varchar) as kind, cast(null as varchar) as raw_value limit 0

-- name: family_of
select {{ source }} as source, * from {{ lake }}.{{ table }}

-- name: no_family
select cast(null as varchar) as source, * from ({{ columns }})

-- name: family_view
-- Every source's table of a family, named by source, as the earlier layout's single table had them.
create or replace view {{ lake }}.{{ view }} as {{ rows }}

-- name: legacy_family_rows
select * from raw.{{ view }}

-- name: legacy_family_sources
select distinct source from raw.{{ view }} order by 1

-- name: legacy_family_days
select distinct _dt from raw.{{ view }} where source = $source

-- name: legacy_family_of
select * exclude (source) from raw.{{ view }} where source = $source

-- name: raw_tables
-- The tables inside raw.duckdb: the earlier layout kept a source's rows there (raw_<source>) and every
-- source's quarantined lines and mentions (quarantine, text_mentions).
select table_name from duckdb_tables() where database_name = 'raw' and schema_name = 'main'

-- name: edit_table
create or replace temp table _lake_edit as select * from lake.{{ table }} where list_contains(cast($days as date[]), _dt)

-- name: edited_rows
select * from _lake_edit

-- name: no_rows
select * from {{ lake }}.{{ table }} where false

-- name: drop_edit_table
drop table if exists _lake_edit

-- name: write_buffers
-- How many rows a writing thread gathers across the days it writes before it hands them to the days' files
-- (DuckDB's default, 524,288, held every day of a 10M erasure's rewrite in memory: 1,904 MiB at its peak
-- against 1,138 MiB with 30,000, and no slower; docs/benchmarks.md).
set partitioned_write_flush_threshold = 30000

-- name: write_days
-- A replacement's rows written as the table's new data files, uncompressed (the byte scan of verification
-- reads every value as written), one directory per day as Delta lays out a partition, each file under a
-- fresh name beside the snapshot's. The rows are streamed: DuckDB writes them within its memory limit.
-- A row of a day not being replaced stops the write. Returns each file's path, rows, size and day.
copy (
    select * replace (
        case when list_contains(cast($lake_days as date[]), _dt) then _dt
             else error('a row of day ' || coalesce(cast(_dt as varchar), 'NULL') || ' is outside the days being replaced') end as _dt)
    from (select {{ typed }} from ({{ rows }}))
) to {{ directory }} (format parquet, partition_by (_dt), compression uncompressed, filename_pattern 'part-{uuid}',
                      append, return_stats)
