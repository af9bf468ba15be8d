"""Secrets in a request: keys, tokens, private keys and pasted passwords.

Library: **detect-secrets** (Yelp, Apache-2.0, maintained, pure Python). Its plugins are the
curated, tested patterns that pre-commit hooks and CI use for vendor tokens (AWS, GitHub,
GitLab, Slack, Stripe, OpenAI, SendGrid, Twilio, Discord, Telegram, npm, PyPI, Azure
storage, Mailchimp, Square), JWTs (it decodes the header and payload, so a random
``eyJ…`` string does not count), PEM/PuTTY private keys, credentials in URLs and
``password: …`` / ``api_key = …`` assignments (its keyword plugin, config-file rules). We
call each plugin's ``analyze_string`` directly: no global settings, no baseline files, and
never ``verify`` — verification would send the secret to the vendor's API, so nothing here
touches the network. Its Shannon-entropy function scores "random-looking" values.

Left out on purpose: the Artifactory plugin (its ``AP…`` password rule matches ordinary
capitalised words in chat), the public-IP plugin (an address is not a secret), the
IBM/SoftLayer/Cloudant plugins (vendor words we do not expect) and the high-entropy
plugins as scanners (they only see quoted strings, or every long word in "eager" mode —
we use their entropy score with our own context rule instead).

Kept as regexes, because detect-secrets 1.5 has no rule for them: GitHub fine-grained
tokens (``github_pat_…``), Google API keys (``AIza…``), Stripe test/restricted keys and
webhook secrets, Slack app-level tokens, plus ``bot.core.sensitivity``'s ``sk-…`` (OpenAI
project / Anthropic) and ``BEGIN … PRIVATE KEY`` rules (which also catch PKCS#8
``ENCRYPTED PRIVATE KEY``); a password written as prose ("my password is Hunter2!"); and a
high-entropy value within a few words after "secret", "token", "key" or "credential".

Password rule: the value must look like a password — at least 6 characters with a letter
and a digit or symbol (or 4-8 digits after "PIN"), not a ``${TEMPLATE}``/``<placeholder>``,
URL or e-mail. So "How do I reset my password?" and "my password is expired" stay public;
"my password is Hunter2!" is restricted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detect_secrets.filters.heuristic import (
    is_potential_uuid,
    is_prefixed_with_dollar_sign,
    is_templated_secret,
)
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from bot.core.sensitivity import API_KEY_RE, PRIVATE_KEY_RE

# Token-shaped plugins: each needs a run of 16+ non-space characters (the cheap pre-check).
TOKEN_PLUGINS: tuple[tuple[str, BasePlugin], ...] = (
    ("api-key", AWSKeyDetector()),
    ("api-key", GitHubTokenDetector()),
    ("api-key", GitLabTokenDetector()),
    ("api-key", SlackDetector()),
    ("api-key", StripeDetector()),
    ("api-key", OpenAIDetector()),
    ("api-key", SendGridDetector()),
    ("api-key", TwilioKeyDetector()),
    ("api-key", DiscordBotTokenDetector()),
    ("api-key", TelegramBotTokenDetector()),
    ("api-key", NpmDetector()),
    ("api-key", PypiTokenDetector()),
    ("api-key", AzureStorageKeyDetector()),
    ("api-key", MailchimpDetector()),
    ("api-key", SquareOAuthDetector()),
    ("jwt", JwtTokenDetector()),
    ("password", BasicAuthDetector()),
)
PRIVATE_KEY = PrivateKeyDetector()
KEYWORDS = KeywordDetector()
BASE64 = Base64HighEntropyString()
HEX = HexHighEntropyString()

EXTRA_API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:github_pat_[A-Za-z0-9_]{50,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[0-9A-Za-z]{24,}"
    r"|xapp-\d-[A-Za-z0-9-]{20,})"
)
LONG_TOKEN_RE = re.compile(r"\S{16,}")
PASSWORDISH_RE = re.compile(r"pass|pwd|contrase", re.I)
# A cheap gate for the keyword and prose rules below (substrings of the lower-cased text).
CREDENTIAL_WORDS = (
    "pass", "pwd", "psw", "pw", "pin", "secret", "token", "key", "credential", "bearer", "auth",
    "kennwort", "contrase", "wachtwoord",
)  # fmt: skip
PROSE_PASSWORD_RE = re.compile(
    r"\b(?P<kind>pass(?:word|wd|phrase|code)s?|pwd|psw|pw|pin(?:\s*code)?"
    r"|passwort|kennwort|mot\s+de\s+passe|contrase(?:ñ|n)a|wachtwoord)"
    r"(?:\s+(?:for|to|of|on)(?:\s+[\w.@'-]+){1,3}?)?"
    r"\s*(?:(?:is(?:\s+now)?|was|will\s+be|set\s+to|changed\s+to|reset\s+to|lautet|ist|est|es)\b|=|:|->)\s*"
    r"[\"'`]?(?P<value>[^\s\"'`]+)",
    re.I,
)
SECRET_CONTEXT_RE = re.compile(
    r"(?<![A-Za-z])(?:secret|token|api_?key|key|credential|bearer|auth)[\w-]*"
    r"(?:\W{1,3}[A-Za-z]+){0,3}?"
    r"\W{1,4}(?P<value>[A-Za-z0-9+/=_.-]{16,})",
    re.I,
)
URL_OR_EMAIL_RE = re.compile(r"://|^www\.|^[^@\s]+@[\w-]+\.[\w.-]+$")
WRAPPING = "()[]{}<>.,;:!?\"'`"  # sentence punctuation and brackets around a value
WORDS_RE = re.compile(r"[^\W\d_]+(?:[-'/][^\W\d_]+)*")  # "expired", "case-sensitive", "N/A"


def _password_like(value: str, *, pin: bool = False) -> bool:
    """6+ characters with a letter and a digit or symbol; not a placeholder, URL or plain words."""
    if not value or is_templated_secret(value) or is_prefixed_with_dollar_sign(value):
        return False
    v = value.strip(WRAPPING)
    if not v or URL_OR_EMAIL_RE.search(v) or WORDS_RE.fullmatch(v):
        return False
    if pin:
        return v.isdigit() and 4 <= len(v) <= 8
    has_letter = any(c.isalpha() for c in v)
    has_other = any(c.isdigit() or not c.isalnum() for c in v)
    return len(v) >= 6 and has_letter and has_other


def _random_looking(value: str) -> bool:
    """Long, mixed letters and digits, and high Shannon entropy for its alphabet."""
    v = value.strip(".=-_")
    if len(v) < 16 or is_potential_uuid(v):
        return False
    if not (any(c.isdigit() for c in v) and any(c.isalpha() for c in v)):
        return False
    if all(c in "0123456789abcdefABCDEF" for c in v):
        return len(v) >= 20 and HEX.calculate_shannon_entropy(v) >= 3.0
    return BASE64.calculate_shannon_entropy(v) >= 3.5


def findings(text: str) -> Iterator[str]:
    """Detector names for the secrets in ``text`` (a name may repeat; never the value)."""
    if ("PRIVATE KEY" in text or "PuTTY" in text) and (
        PRIVATE_KEY_RE.search(text) or any(True for _ in PRIVATE_KEY.analyze_string(text))
    ):
        yield "private-key"
    if LONG_TOKEN_RE.search(text):
        if API_KEY_RE.search(text) or EXTRA_API_KEY_RE.search(text):
            yield "api-key"
        for name, plugin in TOKEN_PLUGINS:
            if any(True for _ in plugin.analyze_string(text)):
                yield name
    low = text.lower()
    if not any(word in low for word in CREDENTIAL_WORDS):
        return
    for value in KEYWORDS.analyze_string(text, CONFIG_DENYLIST_REGEX_TO_GROUP):
        first = next(iter(value.split()), "")  # "password: how do I change it?" → "how"
        if _password_like(first) or _random_looking(first):
            yield "password" if PASSWORDISH_RE.search(text) else "secret"
    for m in PROSE_PASSWORD_RE.finditer(text):
        if _password_like(m["value"], pin=m["kind"].lower().startswith("pin")):
            yield "password"
    if any(_random_looking(m["value"]) for m in SECRET_CONTEXT_RE.finditer(text)):
        yield "secret"
