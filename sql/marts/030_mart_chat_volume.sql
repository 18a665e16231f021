-- Plus Connect chat volume and first-response time per day (of conversation start) and channel.
-- First response: seconds from a conversation's first contact message to the first agent message after it.
create table fresh.mart_chat_volume as
with conversations as (
    select conversation_id, channel, contact_platform_pid as contact_pid, cast(started_at as date) as day
    from stg.stg_connect_conversations
    where cast(started_at as date) >= current_date - cast(getvariable('mart_days') as integer)
        and in_build('mart_chat_volume', cast(started_at as date))
),

messages as (
    select conversation_id, sent_at, sender_type
    from stg.stg_connect_messages
    where conversation_id in (select conversation_id from conversations)
),

per_conversation as (
    select
        conversation_id,
        count(*) filter (where sender_type = 'contact') as messages_in,
        count(*) filter (where sender_type <> 'contact') as messages_out,
        min(sent_at) filter (where sender_type = 'contact') as first_in
    from messages
    group by conversation_id
),

first_response as (
    select p.conversation_id, date_diff('second', p.first_in, min(m.sent_at)) as seconds
    from per_conversation as p
    inner join messages as m
        on m.conversation_id = p.conversation_id and m.sender_type = 'agent' and m.sent_at >= p.first_in
    group by p.conversation_id, p.first_in
),

joined as (
    select
        c.day,
        c.channel,
        c.contact_pid,
        c.conversation_id,
        coalesce(p.messages_in, 0) as messages_in,
        coalesce(p.messages_out, 0) as messages_out,
        f.seconds as first_response_seconds
    from conversations as c
    left join per_conversation as p using (conversation_id)
    left join first_response as f using (conversation_id)
),

cells as (
    select day, channel, count(distinct contact_pid) as people from joined group by all
)

select
    j.day,
    case when c.people < getvariable('k') then '(other)' else j.channel end as channel,
    count(distinct j.conversation_id) as conversations,
    count(distinct j.contact_pid) as contacts,
    cast(sum(j.messages_in) as bigint) as messages_in,
    cast(sum(j.messages_out) as bigint) as messages_out,
    count(j.first_response_seconds) as conversations_answered,
    median(j.first_response_seconds) as median_first_response_seconds,
    quantile_cont(j.first_response_seconds, 0.9) as p90_first_response_seconds,
    avg(j.first_response_seconds) as avg_first_response_seconds
from joined as j
inner join cells as c using (day, channel)
group by all
having count(distinct j.contact_pid) >= getvariable('k')
order by 1, 2;
