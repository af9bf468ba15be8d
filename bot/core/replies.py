"""The sentences the core writes itself: denials, "I don't know", sources-only, sorry.

Kept apart from the flow so wording is reviewed in one place and never includes anything
but department titles, document titles the asker may see, and admin addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import Department
from bot.core.types import Decision


def join_titles(items: Sequence[str]) -> str:
    quoted = [f"“{t}”" for t in items]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


_VOWEL_LETTERS = frozenset("AEFHILMNORSX")  # letters whose English names start with a vowel sound
_SAYS_YOU = ("uni", "use", "usu", "uti", "eu", "one")  # "a university", "a user", "a one-stop"
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")  # "an hourly", "an honors"


def indefinite(title: str) -> str:
    """``title`` after "a" or "an": "an IT Help Desk", "an HR", "a Finance", "a User
    Research". An all-capitals first word is read letter by letter."""
    word = title.split(maxsplit=1)[0] if title.strip() else ""
    if not word:
        return f"a {title}"
    if len(word) == 1 or word.isupper():  # IT, HR, R&D: said letter by letter
        article = "an" if word[0].upper() in _VOWEL_LETTERS else "a"
    elif word.lower().startswith(_SAYS_YOU):
        article = "a"
    elif word.lower().startswith(_SILENT_H):
        article = "an"
    else:
        article = "an" if word[0].lower() in "aeiou" else "a"
    return f"{article} {title}"


def denial(decision: Decision, dept: Department | None, admins: Sequence[str]) -> str:
    if dept is not None and decision.rule in ("pilot:no-match", "disabled"):
        return rollout(dept, admins, pilot=decision.rule != "disabled")
    text = decision.reason or "You don't have access to that."
    if dept is not None and admins:
        text += f" {dept.title} admins ({', '.join(admins)}) can give you access."
    return text


def rollout(dept: Department, admins: Sequence[str], *, pilot: bool) -> str:
    """Someone outside a department's pilot, or any asker of a disabled one (``enabled: false``)."""
    who = ", ".join(admins) if admins else f"the {dept.title} admins"
    if pilot:
        return f"{dept.title} is in a pilot with a small group for now; ask {who} to join."
    return f"{dept.title} isn't taking questions yet; ask {who} when it will."


def skeleton_refused(dept: Department, template: str, admins: Sequence[str]) -> str:
    """A template whose skeleton document cannot be used now (``bot.core.templates``): it is
    not run at all; the admins have a notice naming the file and the problem."""
    who = ", ".join(admins) if admins else f"the {dept.title} admins"
    return (
        f"The {template} template can't be run right now: its skeleton document needs fixing. "
        f"The {dept.title} admins have been told; ask {who} if it's urgent."
    )


def dont_know(dept: Department, searched: Sequence[str], titles: Sequence[str], admins: Sequence[str]) -> str:
    if len(searched) > 1:
        text = f"I couldn't find this in the knowledge you can ask ({', '.join(searched)})."
    else:
        text = f"I couldn't find this in the {dept.title} knowledge."
    if titles:
        text += " The closest documents are " + join_titles(titles) + "."
    if admins:
        text += f" For anything else, ask {indefinite(dept.title)} admin: {', '.join(admins)}."
    return text


NO_WORDS = "The model returned no usable answer."


def sources_only(dept: Department, notice: str) -> str:
    return f"{notice} Here are the most relevant {dept.title} sources.".strip()


def sorry(request_id: str) -> str:
    return f"Sorry, I couldn't answer that just now (request {request_id}). Try again in a minute."


def also_relevant(dept: Department, other: Department) -> str:
    return f"Answered from {dept.title}; {other.title} also looked relevant."


_PII_NAMES = {
    "email-address": "an e-mail address",
    "phone-number": "a phone number",
    "iban": "an IBAN",
    "national-id": "an ID number",
    "payment-card": "a card number",
    "bank-account": "a bank account number",
}


def pii_blocked(title: str, found: Sequence[str]) -> str:
    """Department ``pii: block``: the refusal names the kinds found, never the values."""
    kinds = list(dict.fromkeys(_PII_NAMES.get(f, "a password or key") for f in found))
    if not kinds:
        kinds = ["personal data"]
    what = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
    return (
        f"I didn't send this to the AI model: the conversation contains {what}, and {title} "
        "doesn't allow personal data or credentials there. Ask again without it."
    )
