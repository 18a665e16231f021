-- PII detectors as DuckDB macros: one definition, used by the gate on every text column, by the audit on
-- logs and metadata, and by the tests. Each returns true when the text contains that kind of PII.
-- Digits are folded first: Thai (๐-๙) and fullwidth (０-９) digits count as digits.
create or replace temp macro pii_fold(v) as
    translate(v, '๐๑๒๓๔๕๖๗๘๙０１２３４５６７８９－＋', '01234567890123456789-+');

create or replace temp macro pii_email(v) as
    regexp_matches(v, '[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}');

create or replace temp macro pii_ipv4(v) as
    regexp_matches(pii_fold(v), '(^|[^0-9.])((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])($|[^0-9.])');

-- IPv6: eight groups, or a :: compression with at least one hex group beside it, or IPv4-mapped.
create or replace temp macro pii_ipv6(v) as
    regexp_matches(v, '(^|[^0-9A-Fa-f:])([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}($|[^0-9A-Fa-f:])')
    or regexp_matches(v, '(^|[^0-9A-Za-z:])(([0-9A-Fa-f]{1,4}:){1,6}|:):([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,5})?($|[^0-9A-Za-z:])')
    or regexp_matches(lower(v), '::ffff:[0-9]');

-- Phones: E.164 (+ and 8-15 digits, separators allowed), and Thai national formats (0 + 8-9 digits,
-- with optional dashes/spaces), also glued to Thai text with no spaces around them.
create or replace temp macro pii_phone(v) as
    regexp_matches(pii_fold(v), '\+[1-9]([ \-]?[0-9]){7,14}')
    or regexp_matches(pii_fold(v), '(^|[^0-9])0[0-9]{1,2}[ \-]?[0-9]{3}[ \-]?[0-9]{3,4}($|[^0-9])')
    or regexp_matches(pii_fold(v), '(^|[^0-9])\(0[0-9]{2}\) ?[0-9]{3}[ \-]?[0-9]{4}($|[^0-9])');

-- Thai national id: 13 digits (optionally 1-2345-67890-12-3) whose mod-11 check digit is right.
create or replace temp macro pii_thai_id_ok(d) as
    length(d) = 13 and ((11 - (list_sum(list_transform(range(12), lambda i: cast(substr(d, i + 1, 1) as integer) * (13 - i))) % 11)) % 10)
        = cast(substr(d, 13, 1) as integer);
create or replace temp macro pii_thai_id(v) as
    len(list_filter(
        regexp_extract_all(regexp_replace(pii_fold(v), '([0-9])[ \-]([0-9])', '\1\2', 'g'), '(^|[^0-9])([0-9]{13})($|[^0-9])', 2),
        lambda d: pii_thai_id_ok(d))) > 0;

-- Payment card: 13-19 digits (spaces/dashes allowed) passing the Luhn check.
create or replace temp macro pii_luhn_ok(d) as
    list_sum(list_transform(range(length(d)), lambda i:
        case when i % 2 = 1
             then (cast(substr(reverse(d), i + 1, 1) as integer) * 2) - case when cast(substr(reverse(d), i + 1, 1) as integer) >= 5 then 9 else 0 end
             else cast(substr(reverse(d), i + 1, 1) as integer) end)) % 10 = 0;
create or replace temp macro pii_card(v) as
    len(list_filter(
        regexp_extract_all(regexp_replace(pii_fold(v), '([0-9])[ \-]([0-9])', '\1\2', 'g'), '(^|[^0-9])([0-9]{13,19})($|[^0-9])', 2),
        lambda d: pii_luhn_ok(d))) > 0;

-- LINE user ids (U + 32 hex) and LINE display ids (@name used as an id).
create or replace temp macro pii_line_id(v) as
    regexp_matches(v, '(^|[^0-9A-Za-z])U[0-9a-f]{32}($|[^0-9A-Za-z])');

create or replace temp macro pii_user_agent(v) as
    regexp_matches(v, '(Mozilla/[0-9]|AppleWebKit/|Gecko/|Dalvik/|\(Windows NT |\(iPhone;|\(iPad;|\(Linux; Android|\(Macintosh;|FBAN/|curl/[0-9]|okhttp/)');

-- All detectors at once: the list of the kinds found in v (empty when clean).
create or replace temp macro pii_kinds(v, max_len) as
    list_filter([
        case when pii_email(v) then 'email' end,
        case when pii_ipv4(v) then 'ipv4' end,
        case when pii_ipv6(v) then 'ipv6' end,
        case when pii_phone(v) then 'phone' end,
        case when pii_thai_id(v) then 'thai_national_id' end,
        case when pii_card(v) then 'payment_card' end,
        case when pii_line_id(v) then 'line_user_id' end,
        case when pii_user_agent(v) then 'user_agent' end,
        case when length(v) > max_len then 'too_long' end
    ], lambda x: x is not null);
