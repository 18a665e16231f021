-- The plain-SQL peer: what a competent engineer who skipped the privacy controls would write. Every
-- landing file read once by DuckDB's own readers (bad lines skipped, no reasons kept), a keyed hash per
-- distinct identifier, then the daily-usage, feature, chat and ad marts. No validation reasons, no
-- quarantine, no consent, no small-cell suppression, no gate. {landing} is the landing root.

create table usage_events as
select * from read_json('{landing}/platform_usage_events/*/*.ndjson', format = 'newline_delimited', ignore_errors = true,
    columns = {event_id: 'VARCHAR', event_ts: 'TIMESTAMP', account_id: 'VARCHAR', session_id: 'VARCHAR',
               cookie_id: 'VARCHAR', product: 'VARCHAR', event_type: 'VARCHAR', feature: 'VARCHAR', ip: 'VARCHAR',
               user_agent: 'VARCHAR'});

create table interactions as
select * from read_json('{landing}/adtech_interactions/*/*.ndjson', format = 'newline_delimited', ignore_errors = true,
    columns = {interaction_id: 'VARCHAR', campaign_id: 'VARCHAR', event_ts: 'TIMESTAMP', interaction_type: 'VARCHAR',
               cookie_id: 'VARCHAR', device_ad_id: 'VARCHAR', ip: 'VARCHAR', user_agent: 'VARCHAR'});

create table conversations as
select * from read_json('{landing}/connect_conversations/*/*.ndjson', format = 'newline_delimited', ignore_errors = true,
    columns = {conversation_id: 'VARCHAR', account_id: 'VARCHAR', channel: 'VARCHAR', contact_platform_id: 'VARCHAR',
               contact_name: 'VARCHAR', started_at: 'TIMESTAMP'});

create table messages as
select * from read_json('{landing}/connect_messages/*/*.ndjson', format = 'newline_delimited', ignore_errors = true,
    columns = {message_id: 'VARCHAR', conversation_id: 'VARCHAR', sent_at: 'TIMESTAMP', sender_type: 'VARCHAR',
               text: 'VARCHAR', attachment_type: 'VARCHAR'});

create table performance as
select * from read_csv('{landing}/adtech_performance/*/*.csv', header = true, ignore_errors = true,
    columns = {'date': 'DATE', 'campaign_id': 'VARCHAR', 'impressions': 'BIGINT', 'clicks': 'BIGINT',
               'spend_thb': 'DECIMAL(14,2)', 'conversions': 'BIGINT'});

create table campaigns as
select * from read_csv('{landing}/adtech_campaigns/*/*.csv', header = true, ignore_errors = true, all_varchar = true);

-- A keyed hash per distinct identifier (the key is a variable, never in the data).
create table pids as
select id, sha256(getvariable('key') || id) as pid
from (select account_id as id from usage_events union select session_id from usage_events
      union select cookie_id from interactions union select contact_platform_id from conversations)
where id is not null;

create table mart_daily_active_usage as
select cast(e.event_ts as date) as day, e.product, count(distinct a.pid) as active_accounts,
       count(distinct s.pid) as sessions, count(*) as events
from usage_events e
join pids a on a.id = e.account_id
join pids s on s.id = e.session_id
group by all;

create table mart_feature_usage as
select cast(e.event_ts as date) as day, e.product, e.event_type, coalesce(e.feature, 'none') as feature,
       count(distinct a.pid) as accounts, count(*) as events
from usage_events e
join pids a on a.id = e.account_id
group by all;

create table mart_chat_volume as
with per_conversation as (
    select conversation_id, count(*) filter (where sender_type = 'contact') as messages_in,
           count(*) filter (where sender_type <> 'contact') as messages_out,
           min(sent_at) filter (where sender_type = 'contact') as first_in,
           min(sent_at) filter (where sender_type = 'agent') as first_agent
    from messages group by 1
)
select cast(c.started_at as date) as day, c.channel, count(*) as conversations, count(distinct p2.pid) as contacts,
       sum(p.messages_in) as messages_in, sum(p.messages_out) as messages_out,
       median(date_diff('second', p.first_in, p.first_agent)) as median_first_response_seconds
from conversations c
join pids p2 on p2.id = c.contact_platform_id
left join per_conversation p using (conversation_id)
group by all;

create table mart_ad_performance as
with reach as (
    select cast(i.event_ts as date) as day, i.campaign_id, count(distinct k.pid) as people
    from interactions i join pids k on k.id = i.cookie_id
    group by all
),
latest as (
    select campaign_id, channel, objective from campaigns
    qualify row_number() over (partition by campaign_id order by created_at desc) = 1
)
select p.date as day, p.campaign_id, l.channel, l.objective, p.impressions, p.clicks, p.spend_thb, p.conversions,
       r.people as reach
from performance p
left join latest l using (campaign_id)
left join reach r on r.day = p.date and r.campaign_id = p.campaign_id;
