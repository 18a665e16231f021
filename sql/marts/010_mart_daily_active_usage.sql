-- Daily active usage by product, in long form: one row per (day, product, dimension, value).
-- dimension is one of: all, device_type, os_family, browser_family, country.
-- Small cells: a value describing fewer than k accounts is merged into '(other)'; an '(other)' that is
-- still below k is dropped (see docs/policy.md, "Small cells").
-- One aggregation per dimension counts every cell: it spills less under the memory limit than one
-- grouping-sets pass, one unpivoted aggregation or a pre-aggregation per session (all tried at 10M events);
-- only the events of the (few) small cells are read again to count their '(other)' merge.
-- Staging never leaves a dimension null ('unknown'), which the small-cell join below relies on (a null
-- value would match no event).
create table fresh.mart_daily_active_usage as
with events as (
    select
        cast(event_ts as date) as day,
        product,
        account_pid,
        session_pid,
        visitor_hash,
        device_type,
        os_family,
        browser_family,
        country
    from usage_events
    where consented and in_build('mart_daily_active_usage', cast(event_ts as date))
),

cells as (
    select day, product, 'all' as dimension, 'all' as dimension_value,
        count(distinct account_pid) as active_accounts, count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions, count(*) as events
    from events group by day, product
    union all
    select day, product, 'device_type' as dimension, device_type as dimension_value,
        count(distinct account_pid) as active_accounts, count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions, count(*) as events
    from events group by day, product, device_type
    union all
    select day, product, 'os_family' as dimension, os_family as dimension_value,
        count(distinct account_pid) as active_accounts, count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions, count(*) as events
    from events group by day, product, os_family
    union all
    select day, product, 'browser_family' as dimension, browser_family as dimension_value,
        count(distinct account_pid) as active_accounts, count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions, count(*) as events
    from events group by day, product, browser_family
    union all
    select day, product, 'country' as dimension, country as dimension_value,
        count(distinct account_pid) as active_accounts, count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions, count(*) as events
    from events group by day, product, country
),

small as (
    select day, product, dimension, dimension_value
    from cells
    where active_accounts < getvariable('k')
),

small_cell_events as (
    select s.day, s.product, s.dimension, e.account_pid, e.session_pid, e.visitor_hash
    from small as s
    inner join events as e
        on
            e.day = s.day
            and e.product = s.product
            and s.dimension_value = case s.dimension
                when 'device_type' then e.device_type
                when 'os_family' then e.os_family
                when 'browser_family' then e.browser_family
                when 'country' then e.country
                else 'all'
            end
),

merged_other as (
    select
        day,
        product,
        dimension,
        '(other)' as dimension_value,
        count(distinct account_pid) as active_accounts,
        count(distinct visitor_hash) as unique_visitors,
        count(distinct session_pid) as sessions,
        count(*) as events
    from small_cell_events
    group by all
)

select *
from (
    select * from cells where active_accounts >= getvariable('k')
    union all
    select * from merged_other where active_accounts >= getvariable('k')
)
order by day, product, dimension, dimension_value;
