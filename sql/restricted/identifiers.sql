-- The restricted zone's identifier maps (plus_analytics.privacy.identifiers). Values are bound; the
-- templated parts are SQL the caller composed from the policy ({{ values_sql }}).

-- name: new_values
-- Candidate raw values never seen before for $kind (the redaction marker is never learned).
create or replace temp table _new_values as
select distinct s.v from ({{ values_sql }}) s
anti join (select raw_value from raw.id_map where kind = $kind) m on s.v = m.raw_value
where s.v is not null and s.v <> $redacted

-- name: new_ids_table
create or replace temp table _new_ids (kind varchar, raw_value varchar, normalized varchar,
    error varchar, country varchar, prefix varchar)

-- name: new_ids_canonical
-- Platform ids already in canonical form are their own normalized value: settled without Python.
insert into _new_ids select $kind, v, v, null, null, null from _new_values
where $in_sql and regexp_full_match(v, $canonical)

-- name: new_values_for_python
select v from _new_values where not ($in_sql and regexp_full_match(v, $canonical))

-- name: insert_new_ids
insert into raw.id_map
select n.kind, n.raw_value, n.normalized, n.error, p.pseudonym, p.key_version, n.country, n.prefix, pp.pseudonym
from _new_ids n
left join raw.pseudonyms p on p.kind = n.kind and p.normalized = n.normalized
left join raw.pseudonyms pp on pp.kind = 'ip_prefix' and pp.normalized = n.prefix

-- name: pseudonymize
-- HMAC each new distinct normalized value once, inside DuckDB (the pads are in a TEMP table).
insert into raw.pseudonyms
select $kind, s.normalized, plus_pid(k.ipad, k.opad, s.normalized), k.key_version
from ({{ normalized_sql }}) s
cross join (select * from _pseudonym_key where kind = $kind) k
anti join (select normalized from raw.pseudonyms where kind = $kind) p on p.normalized = s.normalized

-- name: new_user_agents
select distinct s.v from ({{ values_sql }}) s anti join raw.ua_map m on s.v = m.raw_value where s.v is not null

-- name: rekeyed
-- Every pseudonym recomputed under the key in _pseudonym_key (rotation).
create or replace temp table _rekeyed as
select p.kind, p.normalized, plus_pid(k.ipad, k.opad, p.normalized) as pseudonym, k.key_version
from raw.pseudonyms p join _pseudonym_key k using (kind)

-- name: apply_rekey
update raw.id_map set pseudonym = p.pseudonym, key_version = p.key_version
from raw.pseudonyms p where p.kind = id_map.kind and p.normalized = id_map.normalized

-- name: apply_rekey_prefix
update raw.id_map set prefix_pid = p.pseudonym
from raw.pseudonyms p where id_map.kind = 'ip' and p.kind = 'ip_prefix' and p.normalized = id_map.prefix

-- name: orphans
-- Identifiers no row of the zone refers to any more (an IP only an erased subject used, say) leave
-- both maps. {{ refs_sql }} lists (kind, v) of every identifier column of every raw table.
create or replace temp table _refs as
select distinct kind, v from ({{ refs_sql }} union select kind, raw_value from raw.text_mentions) where v is not null

-- name: delete_orphan_ids
delete from raw.id_map where (kind, raw_value) not in (select kind, v from _refs) and kind <> 'ip_prefix'

-- name: delete_orphan_pseudonyms
delete from raw.pseudonyms where kind <> 'ip_prefix' and (kind, normalized) not in
    (select kind, normalized from raw.id_map where normalized is not null)

-- name: delete_orphan_prefixes
delete from raw.pseudonyms where kind = 'ip_prefix' and normalized not in
    (select prefix from raw.id_map where kind = 'ip' and prefix is not null)

-- name: replace_pseudonyms
delete from raw.pseudonyms

-- name: insert_rekeyed
insert into raw.pseudonyms select * from _rekeyed

-- name: register_key
insert into {{ db }}.key_registry values ($purpose, $version, $check, $at)

-- name: last_key
select key_version, check_value from {{ db }}.key_registry where purpose = $purpose order by registered_at desc limit 1

-- name: insert_user_agents
insert into raw.ua_map select * from _new_uas

-- name: key_table
create or replace temp table _pseudonym_key (kind varchar, key_version integer, ipad blob, opad blob);

-- name: key_insert
insert into _pseudonym_key values (?, ?, ?, ?);

-- name: other_versions
select distinct key_version from raw.pseudonyms where key_version <> $version order by 1;

-- name: pseudonyms_by_version
select key_version, count(*) from raw.pseudonyms group by 1 order by 1;

-- name: salted_days
select day from raw.visitor_salt;

-- name: insert_new_ids_frame
insert into _new_ids select * from _new_ids_frame;

-- name: new_ids_count
select count(*) from _new_ids;
