"""Populations of synthetic people and devices, shared by every export of one generated dataset.

Pools are built once per dataset (seeded), small compared to events (thousands to a few hundred
thousand), and hold the values the platform would export in the forms it would export them: Thai and
international names, phones in several written forms (Thai digits, fullwidth, +66, dashes), emails with
stray case and spaces, IPv4, IPv6 and IPv4-mapped forms, real-looking user agents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

from plus_analytics.privacy.normalize import thai_id_checksum_ok

USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.15.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0.33.118;FBBV/557224542;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/16.6;FBSS/3;FBCR/;FBID/phone;FBLC/th_TH;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; CPH2487) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; Redmi Note 11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Mobile Safari/537.36 Line/13.20.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.6167.101 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
UA_WEIGHTS = np.array([14, 10, 6, 12, 8, 6, 4, 3, 3, 12, 5, 3, 4, 4, 2, 2, 2], dtype=float)

# Networks the generated addresses come from: mostly Thai ISPs, some abroad.
IPV4_NETS = [("1.46.0.0", 16, 8), ("49.228.0.0", 14, 8), ("27.55.0.0", 16, 5), ("171.96.0.0", 13, 8),
             ("184.22.0.0", 16, 4), ("223.24.0.0", 14, 4), ("8.8.0.0", 16, 1), ("52.0.0.0", 11, 1),
             ("185.60.216.0", 22, 1), ("202.12.0.0", 16, 1)]
IPV6_NETS = ["2001:44c8:", "2405:9800:", "2403:6200:", "2001:4860:"]
EMAIL_DOMAINS = ["gmail.com", "hotmail.com", "yahoo.co.th", "outlook.co.th", "icloud.com", "plusmail.co.th", "kmitl.ac.th", "corp.example.com"]
THAI_DIGITS = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")
FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    return np.array([r.tobytes().hex() for r in raw], dtype=object)


def _thai_id(rng: np.random.Generator) -> str:
    while True:
        body = "".join(str(d) for d in [rng.integers(1, 9)] + list(rng.integers(0, 10, 11)))
        total = sum(int(d) * (13 - i) for i, d in enumerate(body))
        nid = body + str((11 - total % 11) % 10)
        if thai_id_checksum_ok(nid):
            return nid


def phone_forms(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Thai mobile numbers in the written forms people use; returns (written, canonical E.164)."""
    prefixes = np.array(["06", "08", "09"])[rng.integers(0, 3, n)]
    rest = rng.integers(10_000_000, 99_999_999, n)
    written, canon = [], []
    for p, r, form in zip(prefixes, rest, rng.integers(0, 10, n)):
        local = f"{p}{r:08d}"
        canon.append("+66" + local[1:])
        if form <= 3:
            written.append(f"{local[:3]}-{local[3:6]}-{local[6:]}")
        elif form <= 5:
            written.append(local)
        elif form == 6:
            written.append(f"+66 {local[1:3]} {local[3:6]} {local[6:]}")
        elif form == 7:
            written.append(local.translate(THAI_DIGITS))
        elif form == 8:
            written.append(local.translate(FULLWIDTH_DIGITS))
        else:
            written.append(f" ({local[:3]}) {local[3:6]} {local[6:]} ")
    return np.array(written, dtype=object), np.array(canon, dtype=object)


def _ips(rng: np.random.Generator, n: int) -> np.ndarray:
    out = []
    weights = np.array([w for *_, w in IPV4_NETS], dtype=float)
    weights /= weights.sum()
    for _ in range(n):
        if rng.random() < 0.15:
            pre = IPV6_NETS[rng.integers(0, len(IPV6_NETS))]
            groups = ":".join(f"{x:x}" for x in rng.integers(0, 65536, 6))
            out.append(pre + groups)
            continue
        base, bits, _ = IPV4_NETS[rng.choice(len(IPV4_NETS), p=weights)]
        b = [int(x) for x in base.split(".")]
        val = (b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) + int(rng.integers(1, 2 ** (32 - bits) - 1))
        ip = ".".join(str((val >> s) & 255) for s in (24, 16, 8, 0))
        out.append(ip)
    return np.array(out, dtype=object)


def ip_written_form(ip: str, rng: np.random.Generator) -> str:
    """Sometimes an exporter writes an IPv4 as IPv4-mapped IPv6; it must normalize to the same address."""
    if "." in ip and rng.random() < 0.05:
        return "::ffff:" + ip
    return ip


@dataclass
class Pools:
    accounts: dict
    people: dict
    contacts: dict
    customers: dict


def build_pools(seed: int, scale: float) -> Pools:
    rng = np.random.default_rng(seed)
    fth, fen = Faker("th_TH"), Faker("en_US")
    fth.seed_instance(seed)
    fen.seed_instance(seed + 1)

    n_acc = max(25, int(120 * scale))
    acc_ids = np.array([f"acc_{i:07d}" for i in range(n_acc)], dtype=object)
    thai = rng.random(n_acc) < 0.7
    names = np.array([(fth if t else fen).name() for t in thai], dtype=object)
    locals_ = [fen.user_name() + str(rng.integers(1, 999)) for _ in range(n_acc)]
    emails = np.array([f"{lp}@{EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS))]}" for lp in locals_], dtype=object)
    phones, phones_e164 = phone_forms(rng, n_acc)
    # Each account uses 1-3 devices: an (ip, user agent, cookie) triple each.
    dev_per = rng.integers(1, 4, n_acc)
    dev_owner = np.repeat(np.arange(n_acc), dev_per)
    n_dev = len(dev_owner)
    accounts = dict(
        id=acc_ids, name=names, email=emails, phone=phones, phone_e164=phones_e164,
        password_hash=np.array(["$2b$12$" + h[:53] for h in _hex(rng, n_acc, 32)], dtype=object),
        plan=np.array(["free", "starter", "pro", "enterprise"], dtype=object)[rng.choice(4, n_acc, p=[.4, .3, .2, .1])],
        locale=np.where(thai, "th_TH", "en_US").astype(object),
        activity=rng.pareto(1.5, n_acc) + 1,
        dev_owner=dev_owner,
        dev_ip=_ips(rng, n_dev),
        dev_ua=rng.choice(len(USER_AGENTS) - 1, n_dev, p=(UA_WEIGHTS[:-1] / UA_WEIGHTS[:-1].sum())),
        dev_cookie=_hex(rng, n_dev, 16),
    )

    n_people = max(200, int(2500 * scale))
    people = dict(
        cookie=_hex(rng, n_people, 16),
        device_ad_id=np.array([
            (f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}".upper() if r < 0.6 else None)
            for h, r in zip(_hex(rng, n_people, 16), rng.random(n_people))], dtype=object),
        ip=_ips(rng, n_people),
        ua=rng.choice(len(USER_AGENTS), n_people, p=UA_WEIGHTS / UA_WEIGHTS.sum()),
        activity=rng.pareto(2.0, n_people) + 1,
        consents_analytics=rng.random(n_people) < 0.8,
        consents_ads=rng.random(n_people) < 0.65,
    )

    n_contacts = max(150, int(1500 * scale))
    channel = np.array(["line", "facebook", "instagram", "webchat"], dtype=object)[
        rng.choice(4, n_contacts, p=[.55, .25, .12, .08])]
    hexes = _hex(rng, n_contacts, 16)
    pid = []
    for ch, h, r in zip(channel, hexes, rng.integers(10**15, 10**16, n_contacts)):
        pid.append({"line": "U" + h, "facebook": str(r), "instagram": "17" + str(r)[:15], "webchat": "wc_" + h[:20]}[ch])
    contacts = dict(
        channel=channel, platform_id=np.array(pid, dtype=object),
        name=np.array([(fth if r < .7 else fen).first_name() for r in rng.random(n_contacts)], dtype=object),
        account=rng.integers(0, n_acc, n_contacts),
    )

    n_cust = max(100, int(800 * scale))
    c_thai = rng.random(n_cust) < 0.75
    c_phone, c_phone_e164 = phone_forms(rng, n_cust)
    line_contacts = np.flatnonzero(channel == "line")
    cust_line = np.array([
        contacts["platform_id"][line_contacts[rng.integers(0, len(line_contacts))]] if r < 0.4 else None
        for r in rng.random(n_cust)], dtype=object)
    customers = dict(
        id=np.array([f"cus_{i:08d}" for i in range(n_cust)], dtype=object),
        account=rng.integers(0, n_acc, n_cust),
        name=np.array([(fth if t else fen).name() for t in c_thai], dtype=object),
        phone=c_phone, phone_e164=c_phone_e164,
        email=np.array([
            (f"{fen.user_name()}{rng.integers(1, 99)}@{EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS))]}" if r < .8 else None)
            for r in rng.random(n_cust)], dtype=object),
        line_id=cust_line,
        national_id=np.array([_thai_id(rng) if r < .3 else None for r in rng.random(n_cust)], dtype=object),
        address=np.array([(fth.address() if t else fen.address()).replace("\n", " ") for t in c_thai], dtype=object),
        stage=np.array(["lead", "prospect", "customer", "churned"], dtype=object)[rng.choice(4, n_cust, p=[.4, .25, .3, .05])],
    )
    link_people(rng, accounts, people, contacts, customers)
    return Pools(accounts, people, contacts, customers)


def link_people(rng, accounts, people, contacts, customers) -> None:
    """Some people exist in several products, as in life: a platform user who is also a CRM customer
    (same email, written differently), with a LINE chat, whose browser cookie is seen by the ad network.
    These are the subjects an erasure request must follow across every export."""
    n_link = max(3, len(customers["id"]) // 30)
    busiest = np.argsort(-accounts["activity"])[:n_link]
    line_contacts = np.flatnonzero(contacts["channel"] == "line")
    for j, a in enumerate(busiest):
        email = accounts["email"][a]
        customers["email"][j] = email.upper() if j % 2 else f" {email} "
        customers["line_id"][j] = contacts["platform_id"][line_contacts[j % len(line_contacts)]]
        dev = int(np.flatnonzero(accounts["dev_owner"] == a)[0])
        people["cookie"][j] = accounts["dev_cookie"][dev]
        people["activity"][j] = people["activity"].max()
