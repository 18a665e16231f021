-- What a build (or the published database) says about itself, in meta_build_info.

-- name: k_anonymity
select max(k_anonymity) from {{ db }}.meta_build_info;

-- name: has_staging_version
select count(*) > 0 from duckdb_columns() where table_name = 'meta_build_info' and column_name = 'staging_version';

-- name: staging_version
select max(staging_version) from meta_build_info;
