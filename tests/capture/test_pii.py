"""PII detection: each kind, validators (Luhn, IPv6), no false hits on ordinary text, array == scalar."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from flywheel.capture.pii import PII_KINDS, PiiRedactor, find_pii, luhn_valid
from tests.shared_data import DATASETS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+x@example.co.uk now", "mail [EMAIL] now"),
        ("call +1 (555) 123-4567 today", "call [PHONE] today"),
        ("or 555-123-4567.", "or [PHONE]."),
        ("uk +44 20 7946 0958", "uk [PHONE]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("amex 378282246310005", "amex [CARD]"),
        ("key sk-proj-abcdefghijklmnop1234567890", "key [SECRET]"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "aws [SECRET] here"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [SECRET]"),
        (
            "api_key=supersecretvalue123 and password: hunter2hunter",
            "api_key=[SECRET] and password: [SECRET]",
        ),
        ('{"token": "abcdef123456"}', '{"token": "[SECRET]"}'),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz.123", "Authorization: [SECRET]"),
        ("host 192.168.1.10 down", "host [IP] down"),
        ("v6 2001:db8::8a2e:370:7334 up", "v6 [IP] up"),
    ],
)
def test_each_kind_is_redacted(text: str, expected: str) -> None:
    assert PiiRedactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order #12345 shipped on 2026-01-15 at 10:20:45, total 99.95 EUR",
        "version 1.2.3.4.5 and 256.1.1.1",
        "card-like 4111 1111 1111 1112 fails Luhn",
        "1234567890123 is an order number",
        "ratio 3:4 and time 12:30",
        "the secret of good soup is salt",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert PiiRedactor().redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_hits_are_counted_per_kind_and_kinds_can_be_disabled() -> None:
    text = "a@b.io, c@d.io, 10.0.0.1, 4111 1111 1111 1111"
    r = PiiRedactor()
    r.redact(text)
    assert r.hits == {"email": 2, "ip": 1, "card": 1}
    only_email = PiiRedactor(("email",))
    assert only_email.redact(text) == "[EMAIL], [EMAIL], 10.0.0.1, 4111 1111 1111 1111"
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PiiRedactor(("email", "shoe_size"))


def test_find_pii_names_kind_and_match() -> None:
    assert find_pii("write to x@y.org from 8.8.8.8") == [("email", "x@y.org"), ("ip", "8.8.8.8")]


def _texts() -> list[str]:
    """Real instructions from the Alpaca sample, with PII of every kind mixed into some of them."""
    rows = json.loads((DATASETS / "alpaca_llamafactory_demo.json").read_text(encoding="utf-8"))
    rng = random.Random(7)
    pii = ["jane@example.com", "+1 415-555-0134", "4012 8888 8888 1881", "sk-abcdefghijklmnopqrstuvwx",
           "172.16.254.1", "fe80::1ff:fe23:4567:890a", "password=letmein99", "(030) 1234 5678", "٤١١١١١١١١١١١١١١١"]  # fmt: skip
    texts = []
    for row in rows:
        text = f"{row['instruction']} {row['input']} {row['output']}"
        if rng.random() < 0.3:
            cut = rng.randrange(len(text) + 1)
            text = f"{text[:cut]} {rng.choice(pii)} {text[cut:]}"
        texts.append(text)
    return texts + ["", "x"]


def test_array_redaction_equals_scalar_redaction_on_real_text() -> None:
    texts = _texts()
    scalar = PiiRedactor()
    expected = [scalar.redact(t) for t in texts]
    vectorised = PiiRedactor()
    got = vectorised.redact_array(pa.array(texts + [None], pa.string())).to_pylist()
    assert got == expected + [None]
    assert vectorised.hits == scalar.hits
    assert set(vectorised.hits) == {"secret", "email", "card", "ip", "phone", "person"}
    assert "jane@example.com" not in " ".join(got[:-1])
