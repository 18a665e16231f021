-- What a build (or the published database) says about itself, in meta_build_info; {{ db }} is the
-- session's alias of that database (build, analytics).

-- name: k_anonymity
select max(k_anonymity) from {{ db }}.meta_build_info;

-- name: staging_version
select max(staging_version) from {{ db }}.meta_build_info;

-- name: build_settings
select staging_version, k_anonymity, mart_days, marts_sql from build.meta_build_info;

-- name: drop
-- An incremental build starts from a copy of the published database: its record is written anew.
drop table build.meta_build_info;

-- name: rows_of
select count(*) from {{ db }}.{{ table }};

-- name: days_of
select count(distinct day) from build.{{ table }};

-- name: record
create table build.meta_build_info as select $build_id as build_id, cast($built_at as timestamp) as built_at,
    cast($k as integer) as k_anonymity, cast($version as bigint) as staging_version,
    $tables as mart_row_counts, $mode as build_mode, $rebuilt as days_rebuilt,
    cast($mart_days as integer) as mart_days, $marts_sql as marts_sql;
