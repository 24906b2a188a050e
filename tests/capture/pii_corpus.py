"""Realistic PII strings of every kind capture must redact (several variants each), the needle that
must not survive, and ordinary strings that must come through untouched (the allowlisted support
address among them)."""

from __future__ import annotations

ALLOW = ["nimbus.example", "+1 800 555 0199"]
"""The product's own support domain and phone line (`capture.pii.allow`)."""

# (kind, text as a user or model would write it, the PII in it)
PII_CASES: list[tuple[str, str, str]] = [
    # secrets: provider key formats, assignments, connection strings, PEM, JWT, prose
    ("secret", "my key is sk-proj-Xr4bQ9mZt2LwE8vN1cJ5hKp7 please check", "sk-proj-Xr4bQ9mZt2LwE8vN1cJ5hKp7"),
    ("secret", "ANTHROPIC_API_KEY=sk-ant-api03-Zb7xQ2mN9vL4kT1wR8cY5pJ3hF6dS0aGqE", "sk-ant-api03-Zb7xQ2mN9vL4kT1wR8cY5pJ3hF6dS0aGqE"),
    ("secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("secret", "AWS id AKIAIOSFODNN7EXAMPLE in the logs", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "HF token hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 leaked", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("secret", "gitlab: glpat-Ab3dEf6hIj9kLm2nOp5q", "glpat-Ab3dEf6hIj9kLm2nOp5q"),
    ("secret", "gh token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("secret", "twilio SK2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e", "SK2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e"),
    ("secret", "sendgrid 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",
     "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"),
    ("secret", "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
     "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"),
    ("secret", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq9fZx3kLm0QwPv2nHc8sJd\nYt4uR1eWq5zXo7", "MIIEpAIBAAKCAQEA7bq9fZx3kLm0QwPv2nHc8sJd"),
    ("secret", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
    ("secret", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    ("secret", "stripe sk_live_51HxYzAbCdEfGhIjKlMnOpQr", "sk_live_51HxYzAbCdEfGhIjKlMnOpQr"),
    ("secret", "slack xoxb-2468013579-1357924680-AbCdEfGhIjKlMnOp", "xoxb-2468013579-1357924680-AbCdEfGhIjKlMnOp"),
    ("secret", "google AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"),
    ("secret", "my password is Tr0ub4dor&3 so log in", "Tr0ub4dor&3"),
    ("secret", "The password for the admin account is: hunter2!", "hunter2"),
    ("secret", '{"db_password": "correct horse battery staple"}', "correct horse battery staple"),
    ("secret", "postgres://admin:S3cr3tPass@db.acme.io/prod password=S3cr3tPass", "S3cr3tPass"),
    # e-mail: ASCII, Unicode local part, IDN domain, punycode, CJK
    ("email", "write to jane.doe@example.com today", "jane.doe@example.com"),
    ("email", "Kontakt: jürgen.müller@beispiel.de", "jürgen.müller@beispiel.de"),
    ("email", "mail info@münchen.de for details", "info@münchen.de"),
    ("email", "or kontakt@xn--mnchen-3ya.de", "kontakt@xn--mnchen-3ya.de"),
    ("email", "联系 用户@例子.广告 谢谢", "用户@例子.广告"),
    # IBAN, card
    ("iban", "SSN 123-45-6789, IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    ("iban", "pay to GB82WEST12345698765432 by Friday", "GB82WEST12345698765432"),
    ("iban", "IBAN: FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("card", "card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("card", "mastercard 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("card", "amex 378282246310005", "378282246310005"),
    # SSN, passport, date of birth
    ("ssn", "SSN 123-45-6789, thanks", "123-45-6789"),
    ("ssn", "my social security number is 078051120", "078051120"),
    ("ssn", "ssn: 219 09 9999", "219 09 9999"),
    ("passport", "passport number 123456789 expires soon", "123456789"),
    ("passport", "Passport No: X12345678", "X12345678"),
    ("passport", "Reisepassnummer C01X00T47", "C01X00T47"),
    ("dob", "date of birth: 04/12/1985", "04/12/1985"),
    ("dob", "DOB 1985-12-04", "1985-12-04"),
    ("dob", "I was born on March 3, 1990 in Ohio", "March 3, 1990"),
    ("dob", "geboren am 12.03.1979 in Köln", "12.03.1979"),
    # phones: US, French, Indian, bare E.164, German
    ("phone", "call me at (415) 555-0134", "555-0134"),
    ("phone", "appelez le +33 6 12 34 56 78", "6 12 34 56 78"),
    ("phone", "mon portable 06 12 34 56 78", "06 12 34 56 78"),
    ("phone", "WhatsApp +91 98765 43210", "98765 43210"),
    ("phone", "mobile 098765 43210", "098765 43210"),
    ("phone", "text +14155550134 now", "+14155550134"),
    ("phone", "Büro +49 30 12345678", "30 12345678"),
    ("phone", "phone: 9876543210", "9876543210"),
    # addresses (US and German) and names in context
    ("address", "I live at 742 Evergreen Terrace, Springfield, IL 62704", "742 Evergreen Terrace"),
    ("address", "ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500", "1600 Pennsylvania Avenue"),
    ("address", "Meine Adresse: Hauptstraße 5, 10115 Berlin", "Hauptstraße 5"),
    ("address", "Lieferung an Goethestr. 12a, 80336 München", "Goethestr. 12a"),
    ("person", "Hi, my name is Jane Doe and I need help", "Jane Doe"),
    ("person", "Kind regards,\nHans Müller", "Hans Müller"),
    ("person", "Please ask Mr. Oliver Twist", "Oliver Twist"),
    # IP
    ("ip", "server at 192.168.10.24 is down", "192.168.10.24"),
    ("ip", "v6 2001:db8::8a2e:370:7334 up", "2001:db8::8a2e:370:7334"),
]  # fmt: skip

NEGATIVES: list[str] = [
    "Upgrade to version 1.2.3 or 2.10.4-beta",
    "Your order ORD-2024-118823 has shipped",
    "order id 20240115-7781 is in transit",
    "The release went out on 2024-01-15",
    "The meeting is on 03/04/2025 at 10:30",
    "Write to billing@nimbus.example for refunds",
    "Our support line is +1 800 555 0199",
    "max_tokens = 512 and tokenizer = AutoTokenizer.from_pretrained('gpt2')",
    "The password must be at least 8 characters long",
    "Python 3.11.7 on build 20240115",
    "We shipped 1 000 000 units",
    "ISBN 978-3-16-148410-0",
    "the secret of good soup is salt",
    "Turn left after 3 blocks",
    "Game Name: Shape Explorers",
    "ratio 3:4 and time 12:30",
    "card-like 4111 1111 1111 1112 fails Luhn",
]
