"""PII detection and redaction: at capture for every row, and again, with NER, where data becomes training data.

Kinds (`capture.pii.kinds` in flywheel.yaml), applied in this order, each match replaced by `[KIND]`
(`rules.py` has the patterns; what `capture.pii.allow` names is kept):
- `secret`: API keys and tokens (OpenAI, Anthropic, Stripe, AWS, GitHub, GitLab, Hugging Face, Slack,
  Google, Twilio, SendGrid, npm, PyPI, ...), JWTs, `Bearer ...`, PEM private keys (truncated ones
  too), `api_key=...` / `aws_secret_access_key = ...` / `"token": "..."` / `AccountKey=...;`
  assignments and passwords in prose ("my password is ..."): only the value is replaced;
- `email` (Unicode local parts, IDN domains); `iban` (mod-97 and the country's length); `card`
  (13-19 digits passing Luhn); `ssn` (SSA rules; bare 9 digits only after "SSN");
- `passport`, `dob`: numbers and dates after a context word ("passport no", "date of birth", "born");
- `address` (US "12 Main Street, ...", German "Hauptstraße 5, 10115 Berlin") and `person` (after
  "my name is", "Mr.", "Regards,", ...): what patterns can see; NER (`ner.py`) finds the other names;
- `ip` (IPv4, IPv6 checked with `ipaddress`); `phone`: shapes found by pattern (international,
  grouped national, French, Indian, digits after "phone"/"call"), checked with libphonenumber
  (`phonenumbers`): possible for its country with `+`, else valid in one of `capture.pii.phone_regions`.

Each kind has an exact Python pattern (look-arounds, a validator) and a looser RE2 pattern that
matches a superset of it. `PiiRedactor.redact_array` runs the RE2 patterns vectorised in Arrow C++
over a whole column and applies the exact Python pattern only to the rows they flag, which keeps the
capture stage at hundreds of thousands of texts per second per core. `redact` (one text) gives
identical results.

Why not Presidio at capture: presidio-analyzer's pattern recognizers cover fewer of these kinds (no
API keys), and each recognizer runs per text in Python. Measured with `benchmarks/capture.py
--pii-compare` on the same 3,000 Alpaca texts (10% with PII), on 2 shared CPU cores: presidio's
email, card, IP and phone recognizers ran 430-540 texts/s, this module tens of thousands of texts/s
with every kind above. Presidio's value is NER, which `ner.py` runs (through spaCy, which Presidio
wraps) where it is affordable: on the rows that enter a labeling batch, a dataset version or the eval
set, and on reviewers' fixed answers.
"""

from flywheel.capture.pii.ner import TextScan, TrainingTextScrubber, ner_available
from flywheel.capture.pii.redactor import (
    Allowlist,
    PiiRedactor,
    find_pii,
    placeholder,
    redact_quarantine_rows,
)
from flywheel.capture.pii.rules import NER_KINDS, PII_KINDS, iban_valid, luhn_valid, ssn_valid

__all__ = [
    "NER_KINDS", "PII_KINDS", "Allowlist", "PiiRedactor", "TextScan", "TrainingTextScrubber", "find_pii", "iban_valid",
    "luhn_valid", "ner_available", "placeholder", "redact_quarantine_rows", "ssn_valid",
]  # fmt: skip
