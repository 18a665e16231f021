"""Each PII detector, positive and negative, Thai forms included."""

import pytest

from plus_analytics.gate.detectors import detect_values

POSITIVE = {
    "email": ["someone@gmail.com", "ติดต่อ somchai.j@plusmail.co.th ค่ะ", "A.B+tag@Example.COM"],
    "ipv4": ["1.46.3.4", "ip=49.228.10.200;", "::ffff:1.2.3.4"],
    "ipv6": ["2001:44c8::1", "fe80::1", "2405:9800:1:2:3:4:5:6", "::ffff:1.2.3.4"],
    "phone": ["+66 81 234 5678", "081-234-5678", "0812345678", "โทร0812345678ได้เลย", "โทร๐๘๑๒๓๔๕๖๗๘ค่ะ",
              "０８１２３４５６７８", "02-123-4567", "(081) 234 5678", "+14155552671"],
    "thai_national_id": ["1101700230708", "เลขบัตร1101700230708ครับ", "1-1017-00230-70-8", "๑๑๐๑๗๐๐๒๓๐๗๐๘"],
    "payment_card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "card 378282246310005"],
    "line_user_id": ["U" + "0123456789abcdef" * 2, "id: U" + "a" * 32],
    "user_agent": ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)", "Dalvik/2.1.0 (Linux; U; Android 11)",
                   "curl/8.4.0"],
    "too_long": ["x" * 65],
}
NEGATIVE = ["Mac OS X", "Chrome Mobile", "TH", "(other)", "all", "device_type", "2026-10-01", "10:00:00",
            "abcdefghijklmnopabcdefghijklmnop", "1101700230709", "4111111111111112", "cmp_000123", "v1.2.3",
            "line", "webchat", "inbox_filter", "สวัสดีค่ะ", "12345", "Windows", "Googlebot", "unknown"]


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in POSITIVE.items() for v in vs])
def test_detector_positive(kind, value):
    assert kind in detect_values([value])[0]


@pytest.mark.parametrize("value", NEGATIVE)
def test_detector_negative(value):
    assert detect_values([value])[0] == []


def test_pseudonyms_never_trip_detectors(key):
    values = [key.pseudonym(kind, f"value-{i}") for i in range(300) for kind in ("email", "phone")]
    assert all(not found for found in detect_values(values))
