-- The canary (plus_analytics.gate.scan): does any text value of a catalog equal, or contain as a token,
-- a raw identifier the restricted zone knows, or equal a value it keeps in the restricted zone only?

-- name: identifiers
-- The lowercased raw and normalized forms of every identifier (length >= $min), once per run.
create or replace temp table _canary_ids as
select kind, lower(raw_value) as val from {{ raw }}.id_map where length(raw_value) >= $min
union
select kind, lower(normalized) from {{ raw }}.id_map where length(normalized) >= $min

-- name: token_hits
-- (key, kind) for every text of {{ source_sql }} (columns key, v) that equals, or contains as a token, an
-- identifier of _canary_ids. Tokens split on $split: whitespace and punctuation identifiers are not made of.
with t as ({{ source_sql }}),
     tokens as (
         select key, lower(v) as tok from t
         union all
         select key, lower(unnest(regexp_split_to_array(v, $split))) from t)
select distinct t.key, i.kind from tokens t join _canary_ids i on t.tok = i.val

-- name: column_hits
select kind, count(*), list(key order by key)[1:5] from ({{ hits }}) group by kind

-- name: dropped_values
-- Whole-value matches against every column the policy keeps in the restricted zone only (names, message
-- text, notes, addresses, password hashes): a mart that copies one is caught though no pattern would be.
create or replace temp table _canary_dropped as select distinct kind, val from ({{ parts }})

-- name: dropped_value_of_column
select {{ pii }} as kind, lower({{ column }}) as val from {{ raw }}.{{ table }} where length({{ column }}) >= $min

-- name: dropped_hits
with t as (select row_number() over () as rn, lower({{ column }}) as v from {{ catalog }}.{{ table }} where {{ column }} is not null)
select d.kind, count(distinct t.rn), list(distinct t.rn order by t.rn)[1:5]
from t join _canary_dropped d on t.v = d.val group by d.kind

-- name: texts_table
-- The texts the PII audit scans (task logs, Airflow's records), for the canary join.
create or replace temp table _texts as select cast(key as varchar) as key, cast(v as varchar) as v from _t;
