"""Words as the extractive answerer compares them: stemmed, stopwords out, a few synonyms.

Shared by ``units`` (what a unit is about) and ``select`` (what the question asks), so both
sides are normalised the same way.
"""

from __future__ import annotations

import re

import Stemmer

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    get got had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    much many please tell know need want must may might shall happen happens happened
    """.split()  # noqa: SIM905 - a word list reads better as text
)
TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]*|\d+[A-Za-z]+[A-Za-z0-9]*")

# A deliberately small, generic synonym map (everyday word → the word policies tend to use),
# not tuned to one question: family roles and a few workplace nouns. A question word and
# its synonyms form one group, and a unit covers the group when it has any of them, so a
# synonym never dilutes the question and a document that uses the everyday word still
# matches it best. Values are space-separated words.
SYNONYMS = {
    "father": "parent",
    "fathers": "parent",
    "dad": "parent",
    "dads": "parent",
    "mother": "parent",
    "mothers": "parent",
    "mom": "parent",
    "mum": "parent",
    "maternity": "parental",
    "paternity": "parental",
    "boss": "manager",
    "computer": "laptop",
    "pc": "laptop",
    "keep": "retain store",  # "how long do we keep X": policies say retained / stored
    "kept": "retain store",
}

_stemmer = Stemmer.Stemmer("english")


def _words(text: str) -> list[str]:
    words = (raw.lower().strip("'-") for raw in TOKEN_RE.findall(text))
    return [w for w in words if len(w) > 1 and w not in STOPWORDS]


def terms(text: str) -> list[str]:
    """Stemmed content words of ``text``, in order (numbers are left to ``amounts``)."""
    return _stemmer.stemWords(_words(text))


# "how often / how long / how soon …" asks for a kind of value (``answer_type``), it does
# not name a topic: "often" must not make a section headed "How often you are asked" the
# answer to "How often are laptops replaced?".
_HOW = re.compile(
    r"\bhow\s+(?:often|long|soon|quickly|fast|far|frequently|early|late|big|large|high|low|small)\b",
    re.I,
)


def question_words(text: str) -> dict[frozenset[str], str]:
    """Each key-term group of the question → the stem of the word the question used
    (the words of a "how often"-style question form left out: they ask, they are not asked
    about)."""
    groups: dict[frozenset[str], str] = {}
    for word in _words(_HOW.sub(" ", text)):
        alt = SYNONYMS.get(word)
        stem = _stemmer.stemWord(word)
        group = frozenset(_stemmer.stemWords([word, *alt.split()]) if alt else [stem])
        groups.setdefault(group, stem)
    return groups


def strip_emphasis(text: str) -> str:
    """Quoted words without Markdown emphasis (``**bold**``, ``__x__``, ``*x*``): quotes keep
    the document's words, and every surface shows them as plain text."""
    text = re.sub(
        r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__", lambda m: m.group(1) or m.group(2), text
    )
    return re.sub(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])", r"\1", text)


PREFIX_CHARS = 5  # "respond"/"respons", "quick"/"quickli": stems one stemmer step apart


def related(stem: str, other: str) -> bool:
    """Two stems of one word family the stemmer left apart: one is a prefix of the other,
    or they share their first six letters, both at least ``PREFIX_CHARS`` long."""
    if stem == other:
        return True
    if min(len(stem), len(other)) < PREFIX_CHARS:
        return False
    if stem.startswith(other) or other.startswith(stem):
        return True
    return len(stem) > 6 and len(other) > 6 and stem[:6] == other[:6]
