"""PII detection: every kind in realistic variants, validators (Luhn, IBAN mod-97, SSN, libphonenumber) under
hypothesis, no false hits on ordinary text, the allowlist, array == scalar, quarantine lines redacted."""

from __future__ import annotations

import json
import random

import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.capture.pii import PII_KINDS, PiiRedactor, find_pii, iban_valid, luhn_valid, ssn_valid
from flywheel.capture.pii.rules import IBAN_LENGTHS
from tests.capture.pii_corpus import ALLOW, NEGATIVES, PII_CASES
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


# --- the corpus: every kind, several variants each --------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "text", "needle"), PII_CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(PII_CASES)]
)
def test_every_kind_is_found_and_redacted(kind: str, text: str, needle: str) -> None:
    redactor = PiiRedactor(allow=ALLOW)
    out = redactor.redact(text)
    assert needle not in out and f"[{kind.upper()}]" in out, out
    assert kind in {k for k, _ in find_pii(text, allow=ALLOW)}
    assert redactor.redact(out) == out  # placeholders are not PII: redaction is idempotent


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_and_allowlisted_text_is_left_alone(text: str) -> None:
    assert PiiRedactor(allow=ALLOW).redact(text) == text


def test_the_corpus_covers_every_kind() -> None:
    assert {k for k, _, _ in PII_CASES} == set(PII_KINDS) and len(PII_CASES) >= 44


def test_allowlist_keeps_the_products_own_address_domain_and_phone_only() -> None:
    text = "Write to billing@nimbus.example or help@eu.nimbus.example, call +1 800 555 0199 or (800) 555-0199"
    assert PiiRedactor(allow=ALLOW).redact(text) == text
    assert PiiRedactor().redact(text) == "Write to [EMAIL] or [EMAIL], call [PHONE] or [PHONE]"
    other = "jane@example.com, bob@nimbus.example.evil.com, +1 415 555 0134"
    assert PiiRedactor(allow=ALLOW).redact(other) == "[EMAIL], [EMAIL], [PHONE]"
    exact = PiiRedactor(allow=["Support@Nimbus.example"])
    assert (
        exact.redact("support@nimbus.example and sales@nimbus.example")
        == "support@nimbus.example and [EMAIL]"
    )


def test_issue_example_and_unknown_phone_region() -> None:
    assert (
        PiiRedactor().redact("SSN 123-45-6789, IBAN DE89 3704 0044 0532 0130 00") == "SSN [SSN], IBAN [IBAN]"
    )
    with pytest.raises(ValueError, match="unknown phone regions"):
        PiiRedactor(phone_regions=("XX",))


# --- validators under hypothesis ------------------------------------------------------------------------
def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@given(st.text("0123456789", min_size=12, max_size=18), st.integers(0, 17), st.integers(1, 9))
def test_luhn_accepts_its_check_digit_and_catches_any_single_digit_error(
    body: str, pos: int, delta: int
) -> None:
    number = _luhn_complete(body)
    assert luhn_valid(number)
    i = pos % len(number)
    wrong = number[:i] + str((int(number[i]) + delta) % 10) + number[i + 1 :]
    assert not luhn_valid(wrong)
    grouped = " ".join(number[j : j + 4] for j in range(0, len(number), 4))
    if number[0] != "0":
        assert PiiRedactor(("card",)).redact(f"pay with {grouped} now") == "pay with [CARD] now"


def _iban(country: str, bban: str) -> str:
    for check in range(2, 99):
        candidate = f"{country}{check:02d}{bban}"
        if iban_valid(candidate):
            return candidate
    raise AssertionError("no check digits")


@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.data())
def test_iban_mod97_and_length_and_redaction(country: str, data: st.DataObject) -> None:
    bban = data.draw(
        st.text("0123456789", min_size=IBAN_LENGTHS[country] - 4, max_size=IBAN_LENGTHS[country] - 4)
    )
    iban = _iban(country, bban)
    spaced = " ".join(iban[j : j + 4] for j in range(0, len(iban), 4))
    assert iban_valid(iban) and iban_valid(spaced)
    assert not iban_valid(iban[:-1]) and not iban_valid(iban + "0")
    swapped = iban[:4] + iban[5] + iban[4] + iban[6:]
    assert iban_valid(swapped) == (iban[4] == iban[5])  # mod-97 catches every swap of adjacent digits
    assert PiiRedactor(("iban",)).redact(f"IBAN {spaced}.") == "IBAN [IBAN]."


@given(st.integers(0, 999), st.integers(0, 99), st.integers(0, 9999), st.sampled_from(["-", " "]))
def test_ssn_rules(area: int, group: int, serial: int, sep: str) -> None:
    ssn = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    issuable = area not in (0, 666) and area < 900 and group != 0 and serial != 0
    assert ssn_valid(ssn) == issuable
    assert (PiiRedactor(("ssn",)).redact(f"SSN {ssn}") == "SSN [SSN]") == issuable


_REGIONS = ["US", "GB", "DE", "FR", "IN"]
_FORMATS = [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.NATIONAL]  # fmt: skip


@settings(max_examples=60)
@given(st.sampled_from(_REGIONS), st.sampled_from(_FORMATS), st.sampled_from(["mobile", "fixed"]))
def test_libphonenumbers_own_example_numbers_are_redacted(region: str, fmt: int, kind: str) -> None:
    """libphonenumber's example numbers of each region, in its own formats, are phones."""
    number_type = (
        phonenumbers.PhoneNumberType.MOBILE if kind == "mobile" else phonenumbers.PhoneNumberType.FIXED_LINE
    )
    number = phonenumbers.example_number_for_type(region, number_type)
    text = phonenumbers.format_number(number, fmt)
    out = PiiRedactor(("phone",)).redact(f"reach me on {text} tomorrow")
    assert out == "reach me on [PHONE] tomorrow", text


_FRAGMENTS = (
    [t for _, t, _ in PII_CASES] + NEGATIVES + ["\n", "é", "用户", " ", "12", "-", "@", ".", ":", "="]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)), max_size=8))
def test_array_redaction_equals_scalar_redaction_on_any_mix(parts: list[str]) -> None:
    """The RE2 candidates are supersets of the exact patterns: the vectorised path never misses."""
    text = " ".join(parts)
    scalar, vectorised = PiiRedactor(allow=ALLOW), PiiRedactor(allow=ALLOW)
    assert vectorised.redact_array(pa.array([text, "plain"])).to_pylist() == [scalar.redact(text), "plain"]
    assert vectorised.hits == scalar.hits


# --- quarantine lines ---------------------------------------------------------------------------------------
def test_a_json_line_keeps_its_shape_and_loses_its_pii() -> None:
    raw = json.dumps({"interaction_id": "a1", "ts": "yesterday", "latency_ms": 12, "ok": True,
                      "messages": [{"role": "user", "content": "I am jane@example.com, card 4111111111111111"}],
                      "metadata": {"ssn": 123456789, "note": None, "key": "sk-proj-abcdefghijklmnop1234"}})  # fmt: skip
    out = json.loads(PiiRedactor().redact_raw(raw))
    assert out == {"interaction_id": "a1", "ts": "yesterday", "latency_ms": 12, "ok": True,
                   "messages": [{"role": "user", "content": "I am [EMAIL], card [CARD]"}],
                   "metadata": {"ssn": 123456789, "note": None, "key": "[SECRET]"}}  # fmt: skip
    assert json.loads(PiiRedactor().redact_raw('{"n": 4111111111111111}')) == {"n": "[CARD]"}


def test_a_broken_line_is_redacted_as_text_with_escapes_decoded() -> None:
    raw = '{"messages": [{"content": "mail jane\\u0040example.com or 4111 1111 1111 1111"'
    out = PiiRedactor().redact_raw(raw.replace("\\\\", "\\"))
    assert (
        "example.com" not in out and "4111" not in out and out.startswith('{"messages": [{"content": "mail ')
    )
    deep = "[" * 100_000 + "]" * 100_000
    assert PiiRedactor().redact_raw(deep) == deep
    assert PiiRedactor().redact_raw(
        '["\\ud800 x@y.org"]'.replace("\\\\", "\\")
    ) == '["\\ud800 [EMAIL]"]'.replace("\\\\", "\\")
