"""Deterministic synthetic exports of the Plus Platform, as the platform would land them.

``generate(root, days, scale, seed, start)`` writes ``landing/<source>/dt=YYYY-MM-DD/part-NNNNN.<ext>``
(NDJSON or CSV, per the policy), one day at a time and in parts of at most ``PART_ROWS`` rows, so memory
stays bounded at any scale. Scale 1 is about 3,500 usage and ad events a day plus chats and CRM rows.

Every (source, day) with enough rows carries one malformed row of each kind that applies to it, plus a
few more at random, and ``landing/_manifest.json`` counts them: ingest must quarantine exactly those.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from plus_analytics.generate.pools import USER_AGENTS, Pools, build_pools, ip_written_form
from plus_analytics.policy import load_policy

PART_ROWS = 250_000
MALFORMED_RATE = 0.002
BAD_IPS = ["192.168.01.5", "0x7f.0.0.1", "300.1.2.3", "10.1", "1.2.3.4.5", "017.8.8.8", "fe80::zz"]

USAGE_FEATURES = [
    ("connect", "message_sent", "inbox"), ("connect", "filter_used", "inbox_filter"), ("connect", "pin_set", "chat_pin"),
    ("connect", "page_view", "inbox"), ("crm", "page_view", "contacts"), ("crm", "filter_used", "contact_filter"),
    ("crm", "pin_set", "deal_pin"), ("crm", "record_updated", "contacts"), ("adtech", "campaign_created", "campaigns"),
    ("adtech", "report_viewed", "ad_reports"), ("adtech", "filter_used", "report_filter"), ("platform", "login", None),
    ("platform", "settings_changed", "settings"), ("platform", "export", "data_export"),
]
USAGE_WEIGHTS = np.array([20, 8, 4, 15, 8, 4, 2, 6, 1, 4, 2, 10, 1, 1], dtype=float)

THAI_PHRASES = ["สวัสดีค่ะ สนใจสินค้าตัวนี้ค่ะ", "ราคาเท่าไหร่ครับ", "ส่งฟรีไหมคะ", "ขอบคุณมากค่ะ", "มีสีอื่นไหมครับ",
                "รอสักครู่นะคะ กำลังตรวจสอบให้ค่ะ", "โอนเงินแล้วค่ะ", "จัดส่งภายใน 2 วันครับ"]
EN_PHRASES = ["Hi, is this still available?", "How much is shipping?", "Thanks!", "Do you have it in blue?",
              "Let me check and get back to you.", "Order confirmed, thank you."]
PII_TEMPLATES = ["โทร{phone}ได้เลยค่ะ", "เบอร์ติดต่อ {phone} นะครับ", "Please call me at {phone}", "อีเมล {email} ค่ะ",
                 "My email is {email}", "ส่งของที่ {address} ค่ะ", "เลขบัตรประชาชน {nid} ครับ", "LINE ผม {line} ครับ"]


def _ts(day: dt.date, seconds: np.ndarray) -> np.ndarray:
    base = np.datetime64(day.isoformat(), "ms")
    stamps = base + (seconds * 1000).astype("timedelta64[ms]")
    return np.char.add(np.datetime_as_string(stamps, unit="ms").astype(str), "Z").astype(object)


class _Writer:
    """Writes one (source, day) partition and injects its malformed rows."""

    def __init__(self, root: Path, rng: np.random.Generator, manifest: dict):
        self.root, self.rng, self.manifest = root, rng, manifest
        self.policy = load_policy()

    def _kinds(self, src) -> list[str]:
        cols = src.columns
        kinds = ["bad_json", "missing_field", "wrong_type", "oversized", "invalid_utf8"]
        if src.format == "csv":
            kinds = ["wrong_field_count", "missing_field", "wrong_type", "oversized", "invalid_utf8"]
        if any(c.enum for c in cols):
            kinds.append("bad_enum")
        if any(c.kind == "ip" for c in cols):
            kinds.append("bad_ip")
        if src.format == "ndjson":
            kinds.append("lone_surrogate")
        return kinds

    def _corrupt(self, src, row: dict, kind: str) -> str:
        rng = self.rng
        cols = src.columns
        row = dict(row)
        required = [c for c in cols if c.required and c.name not in src.key]
        if kind == "missing_field":
            row[required[int(rng.integers(0, len(required)))].name] = None
        elif kind == "wrong_type":
            row[src.event_time] = "not-a-date" if src.format == "csv" else 1700000000
        elif kind == "oversized":
            c = [c for c in cols if c.max_length and c.type == "VARCHAR" and not c.enum][-1]
            row[c.name] = "x" * (c.max_length + 1)
        elif kind == "bad_enum":
            c = [c for c in cols if c.enum][0]
            row[c.name] = "telegram"
        elif kind == "bad_ip":
            row[[c for c in cols if c.kind == "ip"][0].name] = BAD_IPS[int(rng.integers(0, len(BAD_IPS)))]
        if src.format == "csv":
            values = ["" if row[c.name] is None else str(row[c.name]) for c in cols]
            if kind == "wrong_field_count":
                values = values[:-2]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(values)
            line = buf.getvalue()
        else:
            clean = {k: v for k, v in row.items() if not (kind == "missing_field" and v is None)}
            line = json.dumps(clean, ensure_ascii=False, default=str)
            if kind == "bad_json":
                line = line[: len(line) // 2]
            elif kind == "lone_surrogate":
                key = f'"{src.key[0]}": "'
                line = line.replace(key, key + "\\ud800", 1)  # a lone surrogate escape: not valid JSON text
        if kind == "invalid_utf8":
            line = line[:10] + "\udcff\udcfe" + line[10:]  # written with surrogateescape: raw bytes 0xff 0xfe
        return line

    def write(self, source: str, day: dt.date, df: pd.DataFrame) -> None:
        src = self.policy[source]
        df = df[list(src.column_names)]
        n = len(df)
        bad: dict[int, str] = {}
        if n >= 40:
            kinds = self._kinds(src)
            extra = int(self.rng.binomial(n, MALFORMED_RATE))
            picks = self.rng.choice(n, size=min(n, len(kinds) + extra), replace=False)
            for i, idx in enumerate(picks):
                bad[int(idx)] = kinds[i] if i < len(kinds) else kinds[int(self.rng.integers(0, len(kinds)))]
        counts = Counter(bad.values())
        part_dir = self.root / source / f"dt={day.isoformat()}"
        part_dir.mkdir(parents=True, exist_ok=True)
        for p, start in enumerate(range(0, max(n, 1), PART_ROWS)):
            chunk = df.iloc[start:start + PART_ROWS]
            if src.format == "ndjson":
                text = chunk.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
                lines = text.rstrip("\n").split("\n") if len(chunk) else []
            else:
                buf = io.StringIO()
                chunk.to_csv(buf, index=False, header=False, lineterminator="\n")
                lines = buf.getvalue().rstrip("\n").split("\n") if len(chunk) else []
            for i in range(len(lines)):
                kind = bad.get(start + i)
                if kind:
                    row = {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in chunk.iloc[i].items()}
                    lines[i] = self._corrupt(src, row, kind)
            if src.format == "csv":
                lines.insert(0, ",".join(src.column_names))
            ext = "ndjson" if src.format == "ndjson" else "csv"
            body = ("\n".join(lines) + "\n") if lines else ""
            (part_dir / f"part-{p:05d}.{ext}").write_bytes(body.encode("utf-8", "surrogateescape"))
        entry = self.manifest["sources"].setdefault(source, {"rows": 0, "malformed": {}})
        entry["rows"] += n
        for k, v in counts.items():
            entry["malformed"][k] = entry["malformed"].get(k, 0) + v


def _message_text(rng, pools: Pools, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    r = rng.random(n)
    cust = pools.customers
    for i in range(n):
        if r[i] < 0.06:
            t = PII_TEMPLATES[int(rng.integers(0, len(PII_TEMPLATES)))]
            j = int(rng.integers(0, len(cust["id"])))
            out[i] = t.format(phone=cust["phone"][j], email=cust["email"][j] or "someone@gmail.com",
                              address=cust["address"][j], nid=cust["national_id"][j] or "1101700230705",
                              line=cust["line_id"][j] or "@plusshop")
        elif r[i] < 0.65:
            out[i] = THAI_PHRASES[int(rng.integers(0, len(THAI_PHRASES)))]
        elif r[i] < 0.97:
            out[i] = EN_PHRASES[int(rng.integers(0, len(EN_PHRASES)))]
        else:
            out[i] = "🙏✨ " + THAI_PHRASES[0] + "\u200b"
    return out


def generate(root: Path, days: int = 30, scale: float = 1.0, seed: int = 7, start: dt.date | None = None) -> dict:
    """Write the landing files; returns (and writes) the manifest."""
    root = Path(root)
    start = start or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days))
    pools = build_pools(seed, scale)
    manifest = {"seed": seed, "scale": scale, "days": days, "start": start.isoformat(), "sources": {}}
    master = np.random.default_rng(seed + 1000)
    acc, ppl, con, cus = pools.accounts, pools.people, pools.contacts, pools.customers
    n_acc, n_ppl, n_cus = len(acc["id"]), len(ppl["cookie"]), len(cus["id"])
    acc_first = np.where(master.random(n_acc) < 0.7, 0, master.integers(0, days, n_acc))
    ppl_first = master.integers(0, days, n_ppl)
    cus_first = master.integers(0, days, n_cus)
    n_camp = max(12, int(30 * scale))
    camp = dict(
        id=np.array([f"cmp_{i:06d}" for i in range(n_camp)], dtype=object),
        account=master.integers(0, n_acc, n_camp),
        first=np.where(master.random(n_camp) < 0.5, 0, master.integers(0, days, n_camp)),
        objective=master.choice(["awareness", "traffic", "engagement", "leads", "sales"], n_camp),
        channel=master.choice(["facebook", "instagram", "line", "google", "tiktok"], n_camp, p=[.35, .2, .3, .1, .05]),
        budget=np.round(master.uniform(300, 20000, n_camp), 2),
        length=master.integers(7, 60, n_camp),
    )
    deals: list[dict] = []
    acc_w = acc["activity"] / acc["activity"].sum()
    ppl_w = ppl["activity"] / ppl["activity"].sum()
    dev_by_acc = pd.Series(np.arange(len(acc["dev_owner"]))).groupby(acc["dev_owner"]).apply(list).to_dict()

    for d in range(days):
        day = start + dt.timedelta(days=d)
        rng = np.random.default_rng([seed, d])
        w = _Writer(root, rng, manifest)

        # platform_accounts: 70% arrive in the first day's initial sync, the rest when created.
        idx = np.flatnonzero(acc_first == d)
        created = _ts(day, rng.integers(0, 86400, len(idx)))
        if d == 0:
            created = np.array([f"{(day - dt.timedelta(days=int(x))).isoformat()}T08:00:00.000Z"
                                for x in rng.integers(1, 700, len(idx))], dtype=object)
        w.write("platform_accounts", day, pd.DataFrame(dict(
            account_id=acc["id"][idx], created_at=created, display_name=acc["name"][idx], email=acc["email"][idx],
            phone=acc["phone"][idx], password_hash=acc["password_hash"][idx], plan=acc["plan"][idx], locale=acc["locale"][idx])))

        # platform_usage_events
        n = int(rng.poisson(2000 * scale))
        a = rng.choice(n_acc, n, p=acc_w)
        dev = np.array([dev_by_acc[x][int(k) % len(dev_by_acc[x])] for x, k in zip(a, rng.integers(0, 3, n))], dtype=np.int64)
        f = rng.choice(len(USAGE_FEATURES), n, p=USAGE_WEIGHTS / USAGE_WEIGHTS.sum())
        feats = np.array(USAGE_FEATURES, dtype=object)[f]
        w.write("platform_usage_events", day, pd.DataFrame(dict(
            event_id=[f"ev_{d:03d}_{i:09d}" for i in range(n)],
            event_ts=_ts(day, np.sort(rng.integers(0, 86400, n))),
            account_id=acc["id"][a],
            session_id=[f"ses_{x}_{d:03d}_{int(k)}" for x, k in zip(a, rng.integers(0, 3, n))],
            cookie_id=acc["dev_cookie"][dev],
            product=feats[:, 0], event_type=feats[:, 1], feature=feats[:, 2],
            ip=[ip_written_form(acc["dev_ip"][x], rng) for x in dev],
            user_agent=np.array(USER_AGENTS, dtype=object)[acc["dev_ua"][dev]])))

        # platform_consent: first decision when a person first shows up, occasional changes later.
        first = np.flatnonzero(ppl_first == d)
        changed = rng.choice(n_ppl, int(rng.binomial(n_ppl, 0.004)), replace=False)
        rows = []
        for i in first:
            rows.append((i, "analytics", bool(ppl["consents_analytics"][i]), "banner"))
            rows.append((i, "advertising", bool(ppl["consents_ads"][i]), "banner"))
        for i in changed:
            if ppl_first[i] < d:
                purpose = "advertising" if rng.random() < .6 else "analytics"
                rows.append((i, purpose, bool(rng.random() < .3), "settings"))
        idx = np.array([r[0] for r in rows], dtype=np.int64)
        cookies = list(ppl["cookie"][idx])
        accts: list = [None] * len(rows)
        if d == 0:  # platform users' devices: the settings page records their analytics choice
            n_dev = len(acc["dev_cookie"])
            choice = rng.random(n_dev) < 0.9
            cookies += list(acc["dev_cookie"])
            accts += list(acc["id"][acc["dev_owner"]])
            rows += [(-1, "analytics", bool(c), "settings") for c in choice]
        w.write("platform_consent", day, pd.DataFrame(dict(
            consent_id=[f"cns_{d:03d}_{i:07d}" for i in range(len(rows))],
            recorded_at=_ts(day, np.sort(rng.integers(0, 86400, len(rows)))),
            cookie_id=cookies, account_id=accts,
            purpose=[r[1] for r in rows], granted=[r[2] for r in rows], source=[r[3] for r in rows])))

        # connect_conversations and connect_messages
        n = int(rng.poisson(250 * scale))
        c = rng.integers(0, len(con["channel"]), n)
        start_s = rng.integers(0, 86400 - 3600, n)
        conv_ids = np.array([f"conv_{d:03d}_{i:07d}" for i in range(n)], dtype=object)
        w.write("connect_conversations", day, pd.DataFrame(dict(
            conversation_id=conv_ids, account_id=acc["id"][con["account"][c]], channel=con["channel"][c],
            contact_platform_id=con["platform_id"][c], contact_name=con["name"][c], started_at=_ts(day, start_s))))
        per = rng.integers(1, 9, n)
        m_conv = np.repeat(np.arange(n), per)
        m_pos = np.concatenate([np.arange(k) for k in per]) if n else np.array([], dtype=int)
        gaps = np.where(m_pos == 1, rng.lognormal(5.5, 1.0, len(m_conv)), rng.exponential(180, len(m_conv)))
        gaps[m_pos == 0] = 0
        offs = pd.Series(gaps).groupby(m_conv).cumsum().to_numpy() if n else gaps
        sender = np.where(m_pos % 2 == 0, "contact", np.where(rng.random(len(m_conv)) < .85, "agent", "bot"))
        m = len(m_conv)
        w.write("connect_messages", day, pd.DataFrame(dict(
            message_id=[f"msg_{d:03d}_{i:08d}" for i in range(m)], conversation_id=conv_ids[m_conv],
            sent_at=_ts(day, np.minimum(start_s[m_conv] + offs.astype(np.int64), 86399)),
            sender_type=sender, text=_message_text(rng, pools, m),
            attachment_type=np.where(rng.random(m) < .1, rng.choice(["image", "file", "sticker", "video"], m), None))))

        # crm_customers (CSV): new customers on their first day, plus a few updates.
        idx = np.concatenate([np.flatnonzero(cus_first == d),
                              rng.choice(np.flatnonzero(cus_first < d), min(int(5 * scale) + 1, int((cus_first < d).sum())), replace=False)
                              if (cus_first < d).any() else np.array([], dtype=np.int64)]).astype(np.int64)
        created_s = _ts(start, np.zeros(len(idx), dtype=np.int64) + 3600 * 9 + cus_first[idx] * 86400)
        w.write("crm_customers", day, pd.DataFrame(dict(
            customer_id=cus["id"][idx], account_id=acc["id"][cus["account"][idx]], created_at=created_s,
            updated_at=_ts(day, rng.integers(36000, 86400, len(idx))), full_name=cus["name"][idx], phone=cus["phone"][idx],
            email=cus["email"][idx], line_id=cus["line_id"][idx], national_id=cus["national_id"][idx],
            address=cus["address"][idx], lifecycle_stage=cus["stage"][idx])))

        known = np.flatnonzero(cus_first <= d)
        n = int(rng.poisson(120 * scale))
        k = known[rng.integers(0, len(known), n)] if len(known) else np.array([], dtype=np.int64)
        n = len(k)
        w.write("crm_activities", day, pd.DataFrame(dict(
            activity_id=[f"act_{d:03d}_{i:07d}" for i in range(n)], customer_id=cus["id"][k],
            account_id=acc["id"][cus["account"][k]],
            activity_type=rng.choice(["call", "note", "email", "meeting", "line_message"], n, p=[.3, .3, .2, .1, .1]),
            occurred_at=_ts(day, np.sort(rng.integers(0, 86400, n))), note=_message_text(rng, pools, n))))

        rows = []
        for _ in range(int(rng.poisson(15 * scale))):
            if len(known) == 0:
                break
            j = int(known[rng.integers(0, len(known))])
            deal = dict(deal_id=f"deal_{len(deals):07d}", customer=j, value=round(float(rng.lognormal(9, 1)), 2), created=day)
            deals.append(deal)
            rows.append((deal, "open"))
        open_deals = [x for x in deals if x.get("stage", "open") == "open" and x["created"] < day]
        closing = rng.choice(len(open_deals), min(len(open_deals), int(6 * scale) + 1), replace=False) if open_deals else []
        for deal in [open_deals[i] for i in closing]:
            deal["stage"] = "won" if rng.random() < .55 else "lost"
            rows.append((deal, deal["stage"]))
        w.write("crm_deals", day, pd.DataFrame(dict(
            deal_id=[x["deal_id"] for x, _ in rows], customer_id=[cus["id"][x["customer"]] for x, _ in rows],
            account_id=[acc["id"][cus["account"][x["customer"]]] for x, _ in rows], stage=[s for _, s in rows],
            value_thb=[x["value"] for x, _ in rows], created_at=[f"{x['created'].isoformat()}T10:00:00.000Z" for x, _ in rows],
            updated_at=_ts(day, np.sort(rng.integers(0, 86400, len(rows)))) if rows else [])))

        # adtech: campaigns (CSV), daily performance (CSV), user-level interactions (NDJSON).
        idx = np.flatnonzero(camp["first"] == d)
        w.write("adtech_campaigns", day, pd.DataFrame(dict(
            campaign_id=camp["id"][idx], account_id=acc["id"][camp["account"][idx]],
            campaign_name=[f"Promo {acc['name'][camp['account'][i]].split()[0]} {i}" for i in idx],
            objective=camp["objective"][idx], channel=camp["channel"][idx], daily_budget_thb=camp["budget"][idx],
            start_date=[day.isoformat()] * len(idx),
            end_date=[(day + dt.timedelta(days=int(camp["length"][i]))).isoformat() for i in idx],
            created_at=_ts(day, rng.integers(0, 36000, len(idx))))))
        active = np.flatnonzero((camp["first"] <= d) & (camp["first"] + camp["length"] >= d))
        imp = rng.poisson(4000 * scale / max(1, len(active)) * 3, len(active))
        clicks = rng.binomial(imp, 0.02)
        w.write("adtech_performance", day, pd.DataFrame(dict(
            date=[day.isoformat()] * len(active), campaign_id=camp["id"][active], impressions=imp, clicks=clicks,
            spend_thb=np.round(imp * rng.uniform(0.05, 0.2, len(active)), 2), conversions=rng.binomial(clicks, 0.08))))
        n = int(rng.poisson(1500 * scale)) if len(active) else 0
        p = rng.choice(n_ppl, n, p=ppl_w)
        itype = rng.choice(["impression", "click", "conversion"], n, p=[.85, .12, .03])
        w.write("adtech_interactions", day, pd.DataFrame(dict(
            interaction_id=[f"ix_{d:03d}_{i:09d}" for i in range(n)],
            campaign_id=camp["id"][active[rng.integers(0, len(active), n)]] if n else [],
            event_ts=_ts(day, np.sort(rng.integers(0, 86400, n))), interaction_type=itype,
            cookie_id=ppl["cookie"][p], device_ad_id=ppl["device_ad_id"][p],
            ip=[ip_written_form(ppl["ip"][x], rng) for x in p],
            user_agent=np.array(USER_AGENTS, dtype=object)[ppl["ua"][p]])))

    root.mkdir(parents=True, exist_ok=True)
    (root / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
