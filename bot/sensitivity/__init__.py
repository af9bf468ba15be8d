"""Request sensitivity: the ``SensitivityClassifier`` port implemented with real detectors.

Lives outside ``bot/core`` because it imports third-party detector libraries; the pure
pieces (detector names, levels, the baseline regexes and checksums) stay in
``bot.core.sensitivity``.

* ``credentials`` — keys, tokens, private keys, pasted passwords (detect-secrets).
* ``identifiers`` — phone numbers (phonenumbers), national ids and IBANs (python-stdnum),
  cards, bank accounts, e-mail.
* ``keywords`` — department keywords and built-in topics, matched on Snowball stems
  (PyStemmer).

Each module's docstring says why its library was chosen and what stays a regex. Rejected:
Microsoft Presidio (needs a spaCy language model download at install or run time, and
is far slower per string), scrubadub (unmaintained since 2023; its useful detectors wrap
phonenumbers and regexes we use directly).
"""

from bot.sensitivity.classifier import PatternClassifier
from bot.sensitivity.identifiers import DEFAULT_PHONE_REGIONS
from bot.sensitivity.keywords import DEFAULT_TOPICS

__all__ = ["DEFAULT_PHONE_REGIONS", "DEFAULT_TOPICS", "PatternClassifier"]
