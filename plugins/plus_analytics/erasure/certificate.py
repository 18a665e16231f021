"""Signed erasure certificates: what was erased where and when, the checks and their results, chained to
the evidence log, signed with Ed25519 by a key the operator holds. A certificate holds no identifier, so
it can be handed to the person who asked; anyone can verify it offline with the published public key:

    plus-analytics certificate verify DSR-....json --public-key certificate_public_key.pem
    # or, with nothing but OpenSSL 3:
    openssl pkeyutl -verify -pubin -inkey certificate_public_key.pem -rawin -in DSR-....payload -sigfile DSR-....sig

The signed bytes are the certificate's payload as canonical JSON (keys sorted, no spaces, UTF-8); the
``.payload`` and ``.sig`` files beside each certificate are exactly those bytes and the raw signature.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plus_analytics.privacy.keys import MissingKeyError

ALGORITHM = "Ed25519"
CHECKS = {"verified_rows": "rows in the restricted zone holding any form of the identifiers",
          "verified_staging": "staging rows holding a pseudonym of the subject, or of another key version",
          "verified_marts": "published marts built from data that still held the subject",
          "verified_bytes": "files under the data directory containing any written form of the identifiers"}


class CertificateInvalid(ValueError):
    """The certificate does not verify: altered, or not signed by this key."""


def load_signing_key(conn_id: str) -> Ed25519PrivateKey:
    """The operator's Ed25519 key from an Airflow connection (PEM, PKCS#8, in ``password``)."""
    try:
        from airflow.sdk import BaseHook

        pem = BaseHook.get_connection(conn_id).password
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except Exception as exc:  # noqa: BLE001 - any failure means: no signing key
        raise MissingKeyError(f"no certificate signing key: Airflow connection {conn_id!r} could not be read as an "
                              f"Ed25519 private key (PEM) ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise MissingKeyError(f"the key in {conn_id!r} is not an Ed25519 key")
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def payload_for(request: dict, evidence: list[dict], chain: tuple[bool, int], head: tuple[int, str],
                public: Ed25519PublicKey, issued_at) -> dict:
    """The certificate's content for a verified (or no-data) request, from the ledger: the request, every
    evidence record of it (with its hash, so it can be checked against the log), the checks, the chain."""
    mine = [e for e in evidence if e["request_id"] == request["request_id"]]
    checks = {}
    for e in mine:
        if e["event"] in CHECKS:
            checks[e["event"]] = {"what": CHECKS[e["event"]], "result": e["check_result"], "checked_at": e["recorded_at"],
                                  "must_be": 0}
    outcome = request["status"]
    return {
        "document": "erasure certificate", "version": 1, "issuer": "Plus Platform analytics (plus-analytics)",
        "request_id": request["request_id"], "identifier_kind": request["id_kind"],
        "received_at": request["received_at"], "deadline": request["deadline"], "outcome": outcome,
        "completed_at": request["verified_at"],
        "statement": ("Every layer of the analytics pipeline was searched for the person's data: landing files, the "
                      "restricted zone, quarantine, staging and the published dashboards. "
                      + ("It was removed from each, the database files were rewritten so no deleted value remains in "
                         "free space, and the checks below found nothing left."
                         if outcome == "verified" else "None was found, and the checks below found nothing.")
                      + " This certificate contains no identifier."),
        "layers": [{k: e[k] for k in ("recorded_at", "event", "layer", "location", "rows_removed", "check_result", "detail")}
                   | {"evidence_seq": e["seq"]} for e in mine],
        "checks": checks,
        "evidence_chain": {"intact": chain[0], "records": chain[1], "request_records": [e["seq"] for e in mine],
                           "head_seq": head[0], "head_hash": head[1]},
        "signing_key": fingerprint(public), "algorithm": ALGORITHM, "issued_at": issued_at,
    }


def sign(payload: dict, key: Ed25519PrivateKey) -> dict:
    body = canonical(payload)
    return {"payload": payload, "algorithm": ALGORITHM, "signature": base64.b64encode(key.sign(body)).decode()}


def verify(certificate: dict, public_key_pem: bytes) -> dict:
    """The payload of a certificate whose signature verifies under ``public_key_pem``; else CertificateInvalid."""
    public = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(public, Ed25519PublicKey) or certificate.get("algorithm") != ALGORITHM:
        raise CertificateInvalid("not an Ed25519 certificate and key")
    try:
        public.verify(base64.b64decode(certificate["signature"]), canonical(certificate["payload"]))
    except (InvalidSignature, KeyError, ValueError):
        raise CertificateInvalid("the signature does not match: the certificate was altered or signed by another key") from None
    if certificate["payload"].get("signing_key") != fingerprint(public):
        raise CertificateInvalid("the certificate names another signing key")
    return certificate["payload"]


def write(certificate: dict, out_dir: Path) -> Path:
    """``<request>.json`` (certificate), ``.html`` (for people), ``.payload`` and ``.sig`` (for OpenSSL)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rid = certificate["payload"]["request_id"]
    path = out_dir / f"{rid}.json"
    path.write_text(json.dumps(certificate, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (out_dir / f"{rid}.payload").write_bytes(canonical(certificate["payload"]))
    (out_dir / f"{rid}.sig").write_bytes(base64.b64decode(certificate["signature"]))
    (out_dir / f"{rid}.html").write_text(render_html(certificate), encoding="utf-8")
    return path


def render_html(certificate: dict) -> str:
    p = certificate["payload"]
    e = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    checks = "".join(f"<tr><td>{e(c['what'])}</td><td><b>{e(c['result'])}</b> (must be 0)</td><td>{e(c['checked_at'])}</td></tr>"
                     for c in p["checks"].values())
    layers = "".join(f"<tr><td>{e(x['recorded_at'])}</td><td>{e(x['event'])}</td><td>{e(x['layer'])}</td>"
                     f"<td>{e(x['location'])}</td><td>{e(x['rows_removed'])}</td><td>{e(x['evidence_seq'])}</td></tr>"
                     for x in p["layers"])
    return f"""<!doctype html><meta charset="utf-8"><title>Erasure certificate {e(p['request_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} td,th{{border:1px solid #ccc;padding:4px 8px;font-size:90%}}
table{{border-collapse:collapse;margin-bottom:1em}} code{{word-break:break-all}}</style>
<h1>Erasure certificate</h1>
<p><b>Request</b> {e(p['request_id'])} &middot; identified by {e(p['identifier_kind'])} &middot; received {e(p['received_at'])} UTC
&middot; deadline {e(p['deadline'])} UTC</p>
<p><b>Outcome: {e(p['outcome'])}</b>, completed {e(p['completed_at'])} UTC.</p>
<p>{e(p['statement'])}</p>
<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>when (UTC)</th></tr>{checks}</table>
<h2>What was done, layer by layer</h2>
<table><tr><th>when (UTC)</th><th>what</th><th>layer</th><th>where</th><th>rows</th><th>evidence record</th></tr>{layers}</table>
<p>Evidence log: {e(p['evidence_chain']['records'])} records, chain {'intact' if p['evidence_chain']['intact'] else 'BROKEN'};
head record {e(p['evidence_chain']['head_seq'])} <code>{e(p['evidence_chain']['head_hash'])}</code>.</p>
<p>Signed ({e(p['algorithm'])}) by key <code>{e(p['signing_key'])}</code> on {e(p['issued_at'])} UTC. Signature:
<code>{e(certificate['signature'])}</code>. Verify offline with the published public key:
<code>plus-analytics certificate verify {e(p['request_id'])}.json --public-key certificate_public_key.pem</code>, or
<code>openssl pkeyutl -verify -pubin -inkey certificate_public_key.pem -rawin -in {e(p['request_id'])}.payload
-sigfile {e(p['request_id'])}.sig</code>.</p>
"""
