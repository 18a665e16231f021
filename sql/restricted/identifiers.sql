-- The restricted zone's identifier maps (plus_analytics.privacy.identifiers). Values are bound; the
-- templated parts are SQL the caller composed from the policy ({{ values_sql }}).

-- A batch's identifiers are learned in the session, without the zone's lock (_batch_values, _ids, _uas:
-- plus_analytics.privacy.identifiers), and published into the maps with the lock held.

-- name: batch_tables
create or replace temp table _batch_values (kind varchar, v varchar);
create or replace temp table _batch_uas (v varchar);
create or replace temp table _ids (kind varchar, raw_value varchar, normalized varchar, error varchar, pseudonym varchar,
    key_version integer, country varchar, prefix varchar, prefix_pid varchar);
create or replace temp table _uas (raw_value varchar, device_type varchar, os_family varchar, browser_family varchar);

-- name: add_values
-- The batch's candidate values of $kind (the redaction marker is never learned).
insert into _batch_values select distinct $kind, s.v from ({{ values_sql }}) s
where s.v is not null and s.v <> $redacted
except select kind, v from _batch_values

-- name: add_user_agents
insert into _batch_uas select distinct s.v from ({{ values_sql }}) s where s.v is not null except select v from _batch_uas

-- name: known_ids
-- What the maps already hold of the batch's values (read under the zone's read lock).
insert into _ids select m.kind, m.raw_value, m.normalized, m.error, m.pseudonym, m.key_version, m.country, m.prefix, m.prefix_pid
from raw.id_map m semi join (select distinct kind, v from _batch_values) b on m.kind = b.kind and m.raw_value = b.v

-- name: known_user_agents
insert into _uas select u.* from raw.ua_map u semi join _batch_uas b on u.raw_value = b.v

-- name: batch_kinds
select distinct kind from _batch_values order by 1

-- name: new_values
-- The batch's values of $kind that neither the maps nor the batch have learned yet.
create or replace temp table _new_values as
select s.v from _batch_values s anti join (select raw_value from _ids where kind = $kind) m on s.v = m.raw_value
where s.kind = $kind

-- name: new_ids_table
create or replace temp table _new_ids (kind varchar, raw_value varchar, normalized varchar,
    error varchar, country varchar, prefix varchar);
create or replace temp table _new_pseudonyms (kind varchar, normalized varchar, pseudonym varchar, key_version integer)

-- name: new_ids_canonical
-- Platform ids already in canonical form are their own normalized value: settled without Python.
insert into _new_ids select $kind, v, v, null, null, null from _new_values
where $in_sql and regexp_full_match(v, $canonical)

-- name: new_values_for_python
select v from _new_values where not ($in_sql and regexp_full_match(v, $canonical))

-- name: insert_new_ids
insert into _ids
select n.kind, n.raw_value, n.normalized, n.error, p.pseudonym, p.key_version, n.country, n.prefix, pp.pseudonym
from _new_ids n
left join _new_pseudonyms p on p.kind = n.kind and p.normalized = n.normalized
left join _new_pseudonyms pp on pp.kind = 'ip_prefix' and pp.normalized = n.prefix

-- name: pseudonymize
-- HMAC each new distinct normalized value once, inside DuckDB (the pads are in a TEMP table).
insert into _new_pseudonyms
select $kind, s.normalized, plus_pid(k.ipad, k.opad, s.normalized), k.key_version
from ({{ normalized_sql }}) s
cross join (select * from _pseudonym_key where kind = $kind) k

-- name: new_user_agents
select v from _batch_uas anti join _uas u on v = u.raw_value

-- name: publish_ids
-- The batch's identifiers into the maps (with the zone's write lock): whatever they do not hold, those
-- learned by this batch and those another run's cleanup removed since they were read.
insert into raw.id_map by name select i.* from _ids i anti join raw.id_map m on m.kind = i.kind and m.raw_value = i.raw_value

-- name: publish_pseudonyms
insert into raw.pseudonyms by name
select distinct p.kind, p.normalized, p.pseudonym, p.key_version from (
    select kind, normalized, pseudonym, key_version from _ids where normalized is not null
    union all select 'ip_prefix', prefix, prefix_pid, key_version from _ids where kind = 'ip' and prefix is not null) p
anti join raw.pseudonyms r on r.kind = p.kind and r.normalized = p.normalized

-- name: publish_user_agents
insert into raw.ua_map by name select u.* from _uas u anti join raw.ua_map m on m.raw_value = u.raw_value

-- name: drop_batch_tables
drop table if exists _batch_values;
drop table if exists _batch_uas;
drop table if exists _ids;
drop table if exists _uas

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
select distinct kind, v from ({{ refs_sql }} union select kind, raw_value from lake.text_mentions) where v is not null

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
insert into _uas select * from _new_uas

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

-- name: drop_new_ids
drop table _new_values;
drop table _new_ids;
drop table _new_pseudonyms
