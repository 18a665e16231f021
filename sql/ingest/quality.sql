-- The data-quality counts of ingest_column_log: per column and rule, never a value.

-- name: by_column
select col, sum(rows_quarantined)::bigint from raw.ingest_column_log
where source = $source and list_contains(cast($days as date[]), _dt)
group by col order by 2 desc, 1;

-- name: report
select _dt, col, problem, sum(rows_quarantined)::bigint from raw.ingest_column_log
where source = $source
group by all order by _dt desc, 4 desc, col, problem;

-- name: totals
select (select count(*) from lake.quarantine), (select sum(rows_loaded) from raw.ingest_log);

-- name: most_quarantined
select source, col, sum(rows_quarantined)::bigint as n from raw.ingest_column_log
group by all order by n desc, source, col limit 5;
