-- Retention (plus_analytics.retention). Table and column names come from the policy; dates are bound.

-- name: rows_per_day
select _dt, count(*) from {{ db }}.{{ table }} where _dt < $cut group by 1 order by 1

-- name: delete_rows
delete from {{ db }}.{{ table }} where _dt < $cut

-- name: days_before
select distinct _dt from {{ db }}.{{ table }} where _dt < $cut order by 1

-- name: column_rows_per_day
select _dt, count(*) from {{ db }}.{{ table }} where _dt < $cut and ({{ some }}) group by 1 order by 1

-- name: null_columns
update {{ db }}.{{ table }} set {{ assignments }} where _dt < $cut and ({{ some }})

-- name: salt_days
select day from raw.visitor_salt where day < $cut order by 1

-- name: delete_salts
delete from raw.visitor_salt where day < $cut

-- name: pending_insert
insert into raw.retention_pending
select cast(table_name as varchar), cast(day as date), cast(columns as varchar[]) from _pending_frame

-- name: pending
select table_name, day, columns from raw.retention_pending order by 1, 2

-- name: pending_done
delete from raw.retention_pending

-- name: landing_logged
-- A landing partition whose evidence is already written (a run died before deleting the directory).
select count(*) from {{ db }}.retention_log where layer = 'landing' and location = $source and day = $day

-- name: log_frame
insert into {{ db }}.retention_log select log_id, run_id, cast(as_of as date), layer, location, cast(day as date), rule,
    cast(rows_destroyed as bigint), cast(destroyed_at as timestamp) from _retention_frame;
