-- The dashboards' reads of the published analytics database (never the restricted zone or staging).
-- Every query takes the date range ($first, $last) and the product filter ($product: 'all' or one product).

-- name: build
select build_id, built_at, k_anonymity, staging_version from analytics.meta_build_info;

-- name: days
select min(day) as first_day, max(day) as last_day from analytics.mart_daily_active_usage;

-- name: usage_by_product
select day, product, active_accounts, unique_visitors, sessions, events
from analytics.mart_daily_active_usage
where dimension = 'all' and day between $first and $last and ($product = 'all' or product = $product)
order by day, product;

-- name: usage_by_dimension
select dimension, dimension_value, sum(active_accounts)::bigint as account_days, count(*)::bigint as days
from analytics.mart_daily_active_usage
where dimension <> 'all' and day between $first and $last and ($product = 'all' or product = $product)
group by all
order by dimension, account_days desc, dimension_value;

-- name: feature_usage
select feature, sum(events)::bigint as events, round(avg(accounts), 1) as avg_daily_accounts, count(*)::bigint as days
from analytics.mart_feature_usage
where day between $first and $last and ($product = 'all' or product = $product)
group by all
order by events desc, feature;

-- name: chat_volume
select day, channel, conversations, messages_in, messages_out, median_first_response_seconds,
    p90_first_response_seconds
from analytics.mart_chat_volume
where day between $first and $last and $product in ('all', 'connect')
order by day, channel;

-- name: crm_activity
select day, activity_type, activities
from analytics.mart_crm_activity
where day between $first and $last and $product in ('all', 'crm')
order by day, activity_type;

-- name: crm_pipeline
select day, deals_created, deals_won, deals_lost, won_value_thb, open_deals, open_pipeline_value_thb
from analytics.mart_crm_pipeline
where day between $first and $last and $product in ('all', 'crm')
order by day;

-- name: ad_performance
select channel, objective, sum(impressions)::bigint as impressions, sum(clicks)::bigint as clicks,
    sum(spend_thb) as spend_thb, sum(conversions)::bigint as conversions,
    case when sum(impressions) > 0 then sum(clicks) / sum(impressions) end as ctr,
    case when sum(conversions) > 0 then round(sum(spend_thb) / sum(conversions), 2) end as cpa_thb,
    count(*) filter (where reach_suppressed)::bigint as reach_suppressed_days, count(*)::bigint as campaign_days
from analytics.mart_ad_performance
where day between $first and $last and $product in ('all', 'adtech')
group by all
order by spend_thb desc, channel, objective;

-- name: consent_exclusions
select day, purpose, sum(events_excluded)::bigint as events_excluded, sum(events_total)::bigint as events_total
from analytics.meta_consent_exclusions
where day between $first and $last and ($product = 'all' or source in (select unnest($sources)))
group by all
order by day, purpose;

-- The rows of one mart for the platform's own dashboards: the same filters. A mart of one product ($owner)
-- is empty for another; the usage marts filter on their product column, the consent exclusions on the
-- product's sources.
-- name: mart_rows
select * from analytics.{{ mart }}
where day between $first and $last
{%- if product_column %} and ($product = 'all' or product = $product)
{%- elif source_column %} and ($product = 'all' or source in (select unnest($sources)))
{%- else %} and $product in ('all', $owner)
{%- endif %}
order by all;
