-- The restricted zone's Delta tables as a session sees them (plus_analytics.storage.lake).

-- name: raw_path
select path from duckdb_databases() where database_name = 'raw'

-- name: over_files
-- A snapshot's data files: the day comes from each file's directory (_dt=<day>), as Delta writes them.
-- The list is a session variable, so a commit moves the view to the new snapshot without a catalog change.
select {{ columns }} from read_parquet(getvariable({{ variable }}), hive_partitioning = true, hive_types = {'_dt': date})

-- name: views
select view_name from duckdb_views() where database_name = $database and schema_name = 'main' and not internal

-- name: legacy_tables
-- Rows of a source in the earlier layout: a raw_<source> table inside raw.duckdb.
select table_name from duckdb_tables() where database_name = 'raw' and schema_name = 'main' and table_name like 'raw\_%' escape '\'

-- name: edit_table
create or replace temp table _lake_edit as select * from lake.{{ table }} where list_contains(cast($days as date[]), _dt)

-- name: drop_edit_table
drop table if exists _lake_edit
