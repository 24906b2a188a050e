"""The PII kinds: per kind an exact Python pattern, its validator and a looser RE2 candidate pattern.

A kind's exact pattern is one alternation of rules. When a named group `v...` matched, only that
group is the PII (`api_key=` stays, the value goes); else the whole match is. The validator decides
on the text found (Luhn for cards, ISO 13616 mod-97 for IBANs, libphonenumber for phones, the SSA's
rules for SSNs). The candidate pattern (RE2 syntax, run by Arrow over a whole column) matches a
superset of the exact one: it drops look-arounds and validators, so a row it does not flag holds none.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

PII_KINDS: tuple[str, ...] = (
    "secret", "email", "iban", "card", "ssn", "passport", "dob", "address", "person", "ip", "phone",
)  # fmt: skip
"""Every kind, in the order redaction applies them (secrets first: a key may look like anything)."""

NER_KINDS: tuple[str, ...] = ("person", "address")
"""Kinds that patterns find only in context ("my name is ...", "12 Main Street"); NER finds the rest."""

DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")

_WS = r"[\t\n\v\f\r ]"  # Python's ASCII \s, spelt out for RE2 (whose \s lacks \v)

# --- secret ----------------------------------------------------------------------------------------
_PEM = r"-----BEGIN[ A-Z0-9]*PRIVATE[ ]KEY(?:[ ]BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE[ ]KEY(?:[ ]BLOCK)?-----|[A-Za-z0-9+/=\s:,\\-]*)"
_TOKENS = r"""
    \b(?:sk|pk|rk)[-_](?:live_|test_|proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{16,}
  | \b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b
  | \bgh[pousr]_[A-Za-z0-9]{30,} | \bgithub_pat_[A-Za-z0-9_]{30,}
  | \bgl(?:pat|ptt|dt|rt|cbt|soat|ft|imt)-[A-Za-z0-9_-]{20,}
  | \bhf_[A-Za-z0-9]{30,} | \bapi_org_[A-Za-z0-9]{30,}
  | \bxox[abposr]-[A-Za-z0-9-]{10,} | hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}
  | \bAIza[0-9A-Za-z_-]{35} | \bya29\.[0-9A-Za-z_-]{20,} | \bGOCSPX-[0-9A-Za-z_-]{20,}
  | \b(?:SK|AC)[0-9a-fA-F]{32}\b
  | \bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}
  | \bnpm_[A-Za-z0-9]{36} | \bpypi-AgE[A-Za-z0-9_-]{50,} | \bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}
  | \bdo[por]_v1_[a-f0-9]{64} | \bkey-[0-9a-zA-Z]{32}\b | \bsq0(?:atp|csp)-[0-9A-Za-z_-]{22,}
  | \bdapi[a-f0-9]{32} | \b\d{8,10}:AA[0-9A-Za-z_-]{33}
  | \beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}
  | (?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{20,}"""
# `aws_secret_access_key = ...`, `"token": "..."`, `Password=...;` (connection strings), not `max_tokens = 5`
_KEY_WORDS = (
    r"api[_-]?key|apikey|api[_-]?secret|secret(?:[_-]?access)?(?:[_-]?key)?|client[_-]?secret|access[_-]?token"
    r"|auth[_-]?token|refresh[_-]?token|token|password|passwd|passphrase|pwd|access[_-]?key|private[_-]?key"
    r"|account[_-]?key|shared[_-]?access[_-]?key|shared[_-]?access[_-]?signature|credentials?"
)
_ASSIGN = (
    rf"(?i:(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.-])*(?:{_KEY_WORDS})(?![A-Za-z0-9_-])[\"']?\s*[:=]\s*)"
    r"(?!(?:os\.environ|os\.getenv|getenv|process\.env|ENV\[|\$\{|\{\{|<|None\b|null\b))"
    r"""(?:"(?P<v1>[^"\n]{4,200})"|'(?P<v2>[^'\n]{4,200})'|(?P<v3>[^\s"',;]{6,}))"""
)
# "my password is Tr0ub4dor&3", "the password for the admin account is: hunter2" (a digit or symbol in it)
_PROSE_PASSWORD = (
    r"(?i:\b(?:password|passwd|passphrase|passcode|passwort|kennwort|mot[ ]de[ ]passe|contraseña)\b"
    r"[^.\n:=]{0,40}?\b(?:is|was|ist|est|es|lautet)\b:?\s+)"
    r"""(?!\[[A-Z]+\])(?P<v4>(?=[^\s"']*[\d!#$%&*+/=?@^_~-])[^\s"']{4,64}?)(?=[.,;:!?"')}\]\\]*(?:\s|$))"""
)
# one rule each, so that a row goes through the (slow) Python pattern of only the rules it may match
_SECRET_RULES = [
    (_PEM, r"-----BEGIN"),
    (_TOKENS, r"\b(?:sk|pk|rk)[-_]|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat_"
              r"|gl(?:pat|ptt|dt|rt|cbt|soat|ft|imt)-|hf_|api_org_|xox[abposr]-|hooks\.slack|AIza|ya29\.|GOCSPX-"
              r"|(?:SK|AC)[0-9a-fA-F]{8}|SG\.|npm_|pypi-|shp(?:at|ss|ca|pa)_|do[por]_v1_|key-[0-9a-zA-Z]{8}|sq0"
              r"|dapi[a-f0-9]{8}|:AA|eyJ|(?i:bearer)"),
    (_ASSIGN, rf"(?i:(?:{_KEY_WORDS})[\"']?{_WS}*[:=])"),
    (_PROSE_PASSWORD, r"(?i:password|passwd|passphrase|passcode|passwort|kennwort|mot de passe|contraseña)"),
]  # fmt: skip

# --- email (Unicode local parts and domains, IDN and punycode) --------------------------------------
_EMAIL = r"(?<![\w.%+'-])[\w.%+'-]+@[\w-]+(?:\.[\w-]+)*\.(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)(?![\w-])"
_EMAIL_CANDIDATE = r"@[^\t\n\v\f\r @]+\.[^\t\n\v\f\r @]"

# --- iban, card, ssn ------------------------------------------------------------------------------
_IBAN = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
_IBAN_CANDIDATE = r"[A-Z]{2}\d{2}[ ]?[A-Z0-9]{4}[ ]?[A-Z0-9]{4}"
_CARD = r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])"
_CARD_CANDIDATE = r"\d(?:[ -]?\d){12,18}"
_SSN = r"""
    (?<![\d-])(?P<v1>\d{3}([- ])\d{2}\2\d{4})(?![\d-])
  | (?i:\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|\#))?)\b[^\d\n]{0,20}?)(?P<v2>\d{9})\b"""
_SSN_CANDIDATE = r"\d{3}[- ]\d{2}[- ]\d{4}|(?i:ssn|social[\t\n\v\f\r ]+security)"

# --- passport, date of birth (context words required) ------------------------------------------------
_PASSPORT = (
    r"(?i:\b(?:passport|reisepass(?:nummer)?|passeport|pasaporte)\b(?:\s+(?:no\.?|nr\.?|number|num|n°|\#|id))?"
    r"\s*(?:is|:|\#|=)?\s*)(?P<v1>(?=[A-Za-z]*\d)[A-Za-z0-9]{6,9})\b"
)
_PASSPORT_CANDIDATE = r"(?i:passport|reisepass|passeport|pasaporte)"
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|märz|mai|juni|juli|oktober|dezember)"
)
_DATE = (
    rf"[0-9]{{1,2}}[./-][0-9]{{1,2}}[./-][0-9]{{2,4}}|[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}"
    rf"|[0-9]{{1,2}}(?:st|nd|rd|th)?\.?[ \t]+{_MONTHS}\.?,?[ \t]+[0-9]{{4}}|{_MONTHS}\.?[ \t]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ \t]+[0-9]{{4}}"
)
_DOB = (
    r"(?i:\b(?:date[ \t]+of[ \t]+birth|d\.?o\.?b\.?|born(?:[ \t]+on)?|birth[ \t]*date|birthday|geburtsdatum"
    r"|geboren(?:[ \t]+am)?|geb\.|née?[ \t]+le|date[ \t]+de[ \t]+naissance)(?![A-Za-z])[ \t]*(?:is|was|:|=|-)?[ \t]*)"
    rf"(?P<v1>(?i:{_DATE}))"
)
_DOB_CANDIDATE = r"(?i:birth|d\.?o\.?b|born|geburt|geboren|geb\.|née?[\t ]+le|naissance)"

# --- street addresses (US: number first; German: number after the street) --------------------------
# patterns compiled without re.ASCII spell out [0-9] and [ \t] so that their RE2 candidates stay supersets
_US_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter"
    r"|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl)"
)
_DE_SUFFIX = r"(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee)"
_UPPER = "A-ZÀ-ÖØ-Þ"
_ADDRESS = rf"""
    (?<![\w.-])[0-9]{{1,6}}[A-Za-z]?[ \t]+(?:[NSEW]\.?[ \t]+)?(?:[{_UPPER}][\w'.-]*[ \t]+){{1,4}}{_US_SUFFIX}\b\.?
      (?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b)?(?:,?[ \t]+(?:Apt|Suite|Ste|Unit|\#)\.?[ \t]*[\w-]+)?
      (?:,[ \t]*[{_UPPER}][\w .'-]{{1,30}}?,[ \t]*[A-Z]{{2}}[ \t]+[0-9]{{5}}(?:-[0-9]{{4}})?)?
  | \b[{_UPPER}][\w-]*?{_DE_SUFFIX}[ \t]+[0-9]{{1,4}}[a-z]?\b(?:,[ \t]*(?:D-)?[0-9]{{5}}[ \t]+[{_UPPER}][\w-]+)?"""
_ADDRESS_CANDIDATE = rf"[0-9][\t ]+[{_UPPER}][^\n]*{_US_SUFFIX}\b|{_DE_SUFFIX}[\t ]+[0-9]"

# --- person (context phrases only; NER finds the rest) ------------------------------------------------
_NAME_WORD = rf"[{_UPPER}][a-zß-öø-ÿ'’]+(?:-[{_UPPER}][a-zß-öø-ÿ]+)?"
_PERSON = (  # one character class first (then look-behinds on it): Python's engine skips to trigger starts
    r"[MmNnFfCcIiJjSsRrDdPpHh]"
    r"(?:(?<!\w.)(?i:(?<=m)y[ \t]+name[ \t]+is|(?<=m)y[ \t]+name's|(?<=c)all[ \t]+me|(?<=i)ch[ \t]+heiße"
    r"|(?<=m)ein[ \t]+name[ \t]+ist|(?<=j)e[ \t]+m'appelle|(?<=s)igned[ \t]*,?|(?<=r)egards[ \t]*,|(?<=s)incerely[ \t]*,)[ \t\n]*"
    r"|(?<![A-Za-z][ \t].)(?<![A-Za-z].)(?i:(?<=f)ull[ \t]+name|(?<=n)ame)[ \t]*:[ \t\n]*"
    r"|(?<!\w.)(?:(?<=M)(?:rs|r|s|x)|(?<=D)r|(?<=P)rof)\.?[ \t]+|(?<!\w.)(?:(?<=H)err|(?<=F)rau|(?<=M)me|(?<=M)lle)[ \t]+)"
    rf"(?P<v1>{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})"
)
_PERSON_CANDIDATE = (
    rf"(?i:my[\t ]+name|name[\t ]*:|call[\t ]+me|heiße|m'appelle|\bsigned\b|regards[\t ]*,|sincerely[\t ]*,)"
    rf"|\b(?:Mr|Mrs|Ms|Mx|Dr|Prof)\.?[\t ]+[{_UPPER}]|\b(?:Herr|Frau|Mme|Mlle)[\t ]+[{_UPPER}]"
)

# --- ip ----------------------------------------------------------------------------------------------
_IP = r"""
    (?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]|\.\d)
  | (?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])"""
_IP_CANDIDATE = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"

# --- phone: shapes found by pattern, numbers checked by libphonenumber -------------------------------
# one character class first (then look-behinds on it), so that Python's engine skips to candidate starts
_PHONE_SHAPES = r"""
    (?P<v1>[+(\d](?<![\w+.-].)
      (?: (?<=\+)[1-9][\d ().-]{6,20}\d(?![\w-]|[.,]\d)
        | (?<=0)0[1-9][\d ().-]{6,20}\d(?![\w-]|[.,]\d)
        | (?<!\d[ ].)(?:(?<=\()\d{2,5}\)[ .-]?|(?<=\d)\d{1,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w-]|[.,]\d|[ ]\d)
        | (?<=0)[1-9](?:[ .-]?\d{2}){4}(?![\w-]|[.,]\d|[ ]\d)
        | (?:(?<=0)[6-9]|(?<=[6-9]))\d{4}[ -]\d{5}(?![\w-]|[.,]\d|[ ]\d)
      ))"""
_PHONE_CONTEXT = r"""
    (?i:\b(?:phone|tel|telephone|mobile|cell|call|whatsapp|fax|telefon|handy|t[ée]l[ée]phone|portable)\b[^\d\n]{0,15}?)
      (?<![\w+.-])(?P<v1>\d{7,15})\b"""
_PHONE_RULES = [
    # international, (area) and grouped national, French, Indian: each contains one of these
    (_PHONE_SHAPES, r"(?:\+|00)[1-9][\d ().-]{6}|\d\)?[ .-]?\d\d\d[ .-]?\d\d\d|0[1-9][ .-]?\d\d[ .-]?\d\d"),
    (
        _PHONE_CONTEXT,
        r"(?i:phone|tel|mobile|cell|call|whatsapp|fax|telefon|handy|t[ée]l[ée]phone|portable)[^0-9\n]*[0-9]{7}",
    ),
]

# kind -> (exact pattern, flags beyond re.VERBOSE, RE2 candidate)
_RULES: dict[str, tuple[str, int, str]] = {
    "email": (_EMAIL, 0, _EMAIL_CANDIDATE),
    "iban": (_IBAN, re.ASCII, _IBAN_CANDIDATE),
    "card": (_CARD, re.ASCII, _CARD_CANDIDATE),
    "ssn": (_SSN, re.ASCII, _SSN_CANDIDATE),
    "passport": (_PASSPORT, re.ASCII, _PASSPORT_CANDIDATE),
    "dob": (_DOB, 0, _DOB_CANDIDATE),
    "address": (_ADDRESS, 0, _ADDRESS_CANDIDATE),
    "person": (_PERSON, 0, _PERSON_CANDIDATE),
    "ip": (_IP, re.ASCII, _IP_CANDIDATE),
}
RULES: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "secret": [(re.compile(p, re.VERBOSE | re.ASCII), c) for p, c in _SECRET_RULES],
    **{k: [(re.compile(p, re.VERBOSE | f), c)] for k, (p, f, c) in _RULES.items()},
    "phone": [(re.compile(p, re.VERBOSE | re.ASCII), c) for p, c in _PHONE_RULES],
}
"""kind -> its rules, applied in order: (exact Python pattern, RE2 candidate matching a superset of it)."""
CANDIDATE: dict[str, str] = {k: "|".join(f"(?:{c})" for _, c in rules) for k, rules in RULES.items()}
"""kind -> an RE2 pattern matching a superset of all its rules."""


# --- validators --------------------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 13616 IBAN lengths per country (SWIFT's IBAN registry)
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(text: str) -> bool:
    """An IBAN of its country's length whose ISO 7064 mod-97 check digits hold."""
    iban = text.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ssn_valid(text: str) -> bool:
    """A US SSN the SSA could issue: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    digits = re.sub(r"\D", "", text)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@lru_cache(maxsize=64)
def phone_validator(regions: tuple[str, ...]) -> Callable[[str], bool]:
    """A check that a text is a phone number: with `+`/`00`, one of a length its country allows; without,
    a valid number of one of `regions` (ISO 3166 codes; libphonenumber's metadata)."""
    import phonenumbers  # its metadata loads per country on first use

    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"unknown phone regions {unknown}: expected ISO 3166 codes such as US, GB, DE")

    def valid(text: str) -> bool:
        digits = sum(ch.isdigit() for ch in text)
        if not 7 <= digits <= 15:
            return False
        international = text.startswith(("+", "00"))
        number = "+" + text[2:] if text.startswith("00") else text
        for region in (None,) if international else regions:
            try:
                parsed = phonenumbers.parse(number, region)
            except phonenumbers.NumberParseException:
                continue
            if (
                phonenumbers.is_possible_number(parsed)
                if international
                else phonenumbers.is_valid_number(parsed)
            ):
                return True
        return False

    return valid


def _ip_valid(text: str) -> bool:
    if ":" not in text:
        return True
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def validators(phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> dict[str, Callable[[str], bool]]:
    """kind -> the check a text found by the kind's pattern must pass (kinds without one pass)."""
    return {
        "card": lambda t: 13 <= len(d := t.replace(" ", "").replace("-", "")) <= 19 and luhn_valid(d),
        "iban": iban_valid,
        "ssn": ssn_valid,
        "ip": _ip_valid,
        "phone": phone_validator(tuple(phone_regions)),
    }
