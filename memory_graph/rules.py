"""Rule entities: DATE, TIME, MONEY, PERCENT, EMAIL, URL, PHONE.

The shipped pipeline carries these patterns in its ``entity_ruler`` (built by
``pipelines/assemble.py``); :func:`add_entity_ruler` adds the same ruler to any other pipeline that
lacks one. The ruler runs after the statistical NER with ``overwrite_ents=False``, so it only
fills gaps and never replaces a statistical entity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language


MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
]  # fmt: skip
WEEKDAYS = [
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
]  # fmt: skip
PERIODS = ["day", "week", "weekend", "month", "year", "quarter", "summer", "winter", "spring", "autumn", "fall", "night", "morning", "evening", "afternoon"]  # fmt: skip
CURRENCY_WORDS = ["dollar", "dollars", "euro", "euros", "pound", "pounds", "usd", "eur", "gbp", "cents", "bucks", "yen", "francs"]  # fmt: skip
CURRENCY_SIGNS = ["$", "€", "£", "¥"]
RELATIVE_DAYS = ["today", "yesterday", "tomorrow", "tonight"]

# Token-level building blocks.
_MONTH = {"LOWER": {"IN": MONTHS}}
_MONTH_STRICT = {"LOWER": {"IN": [m for m in MONTHS if m not in ("may", "mar", "sun", "sat")]}}
_DAY_NUM = {"TEXT": {"REGEX": r"^(0?[1-9]|[12][0-9]|3[01])(st|nd|rd|th)?$"}}
_YEAR = {"TEXT": {"REGEX": r"^(1[89][0-9]{2}|2[0-9]{3})$"}}
_COMMA = {"TEXT": ",", "OP": "?"}
_NUM = {"LIKE_NUM": True}


def rule_patterns() -> list[dict[str, Any]]:
    """The entity-ruler patterns, most specific first (the ruler keeps the longest match)."""
    date: list[list[dict[str, Any]]] = [
        # 2025-06-01, 01/06/2025, 6/1/25
        [{"TEXT": {"REGEX": r"^\d{4}-\d{2}-\d{2}$"}}],
        [{"TEXT": {"REGEX": r"^\d{1,2}[/.]\d{1,2}[/.](\d{2}|\d{4})$"}}],
        # June 1, 2025 / June 1st / 1 June 2025 / June 2025 / May 2024
        [_MONTH, _DAY_NUM, _COMMA, _YEAR],
        [_MONTH_STRICT, _DAY_NUM],
        [{"LOWER": "may"}, {"TEXT": {"REGEX": r"^(0?[1-9]|[12][0-9]|3[01])(st|nd|rd|th)$"}}],
        [_DAY_NUM, {"LOWER": "of", "OP": "?"}, _MONTH, _COMMA, _YEAR],
        [_DAY_NUM, {"LOWER": "of", "OP": "?"}, _MONTH_STRICT],
        [_MONTH, _YEAR],
        [_YEAR],
        # last May, next Tuesday, this weekend, last year
        [{"LOWER": {"IN": ["last", "next", "this", "past", "coming"]}}, {"LOWER": {"IN": MONTHS + WEEKDAYS + PERIODS}}],
        [{"LOWER": {"IN": WEEKDAYS[:7]}}],
        [{"LOWER": {"IN": RELATIVE_DAYS}}],
        [
            {"LOWER": "the"},
            {"LOWER": "day"},
            {"LOWER": {"IN": ["before", "after"]}},
            {"LOWER": {"IN": ["yesterday", "tomorrow"]}},
        ],
        # 3 days ago, two weeks ago, in 2 months
        [_NUM, {"LOWER": {"IN": [p + "s" for p in PERIODS] + PERIODS}}, {"LOWER": "ago"}],
        [{"LOWER": {"IN": ["a", "an"]}}, {"LOWER": {"IN": PERIODS}}, {"LOWER": "ago"}],
        [{"LOWER": "in"}, _NUM, {"LOWER": {"IN": [p + "s" for p in PERIODS] + PERIODS}}],
        [{"TEXT": {"IN": [m.title() for m in MONTHS[:12] if m != "may"]}}],
    ]
    time = [
        [
            {"TEXT": {"REGEX": r"^([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"}},
            {"LOWER": {"IN": ["am", "pm", "a.m.", "p.m."]}, "OP": "?"},
        ],
        [{"TEXT": {"REGEX": r"^(1[0-2]|0?[1-9])(:[0-5][0-9])?$"}}, {"LOWER": {"IN": ["am", "pm", "a.m.", "p.m."]}}],
        [{"TEXT": {"REGEX": r"^(1[0-2]|0?[1-9])(:[0-5][0-9])?(am|pm)$"}}],
        [{"TEXT": {"REGEX": r"^(1[0-2]|0?[1-9])$"}}, {"LOWER": "o'clock"}],
        [{"LOWER": {"IN": ["noon", "midnight"]}}],
    ]
    money = [
        [
            {"TEXT": {"IN": CURRENCY_SIGNS}},
            _NUM,
            {"LOWER": {"IN": ["k", "m", "bn", "million", "billion", "thousand"]}, "OP": "?"},
        ],
        [{"TEXT": {"REGEX": r"^[$€£¥]\d[\d,.]*[kKmM]?$"}}],
        [_NUM, {"LOWER": {"IN": ["million", "billion", "thousand"]}, "OP": "?"}, {"LOWER": {"IN": CURRENCY_WORDS}}],
        [{"TEXT": {"REGEX": r"^\d[\d,.]*$"}}, {"TEXT": {"IN": CURRENCY_SIGNS}}],
    ]
    percent = [
        [_NUM, {"TEXT": "%"}],
        [{"TEXT": {"REGEX": r"^\d[\d,.]*%$"}}],
        [_NUM, {"LOWER": {"IN": ["percent", "per"]}}, {"LOWER": "cent", "OP": "?"}],
    ]
    email = [[{"LIKE_EMAIL": True}]]
    url = [[{"LIKE_URL": True, "TEXT": {"REGEX": r"(^https?://|^www\.|\.[a-z]{2,}(/|$))"}}]]
    phone = [
        [
            {"TEXT": {"REGEX": r"^\+?\(?\d{1,4}\)?$"}},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}},
            {"TEXT": {"REGEX": r"^-?\d{3,4}$"}},
        ],
        [
            {"TEXT": {"REGEX": r"^\+\d{1,3}$"}},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}},
            {"TEXT": {"REGEX": r"^\d{3,4}$"}},
            {"TEXT": {"REGEX": r"^\d{3,4}$"}, "OP": "?"},
        ],
        # An international number in two long groups: "+44 7700 900461" (a UK mobile).
        [
            {"TEXT": {"REGEX": r"^\+\d{1,3}$"}},
            {"TEXT": {"REGEX": r"^\d{3,5}$"}},
            {"TEXT": {"REGEX": r"^\d{5,8}$"}},
        ],
        # An international number in pairs or short groups: "+45 20 12 34 56", "+33 6 12 34 56 78".
        [
            {"TEXT": {"REGEX": r"^\+\d{1,3}$"}},
            {"TEXT": {"REGEX": r"^\d{1,4}$"}},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}, "OP": "?"},
            {"TEXT": {"REGEX": r"^\d{2,4}$"}, "OP": "?"},
        ],
        [
            {"TEXT": "("},
            {"TEXT": {"REGEX": r"^\d{3}$"}},
            {"TEXT": ")"},
            {"TEXT": {"REGEX": r"^\d{3}$"}},
            {"TEXT": "-"},
            {"TEXT": {"REGEX": r"^\d{4}$"}},
        ],
        [{"TEXT": {"REGEX": r"^(\+?\d{1,3}[-.])?\d{3}[-.]\d{3}[-.]\d{4}$"}}],
        [{"TEXT": {"REGEX": r"^\+\d{10,14}$"}}],
        [
            {"TEXT": {"REGEX": r"^\(?\d{3}\)?$"}},
            {"TEXT": {"IN": ["-", "."]}},
            {"TEXT": {"REGEX": r"^\d{3}$"}},
            {"TEXT": {"IN": ["-", "."]}},
            {"TEXT": {"REGEX": r"^\d{4}$"}},
        ],
    ]
    patterns: list[dict[str, Any]] = []
    for label, group in (
        ("EMAIL", email),
        ("URL", url),
        ("PHONE", phone),
        ("MONEY", money),
        ("PERCENT", percent),
        ("TIME", time),
        ("DATE", date),
    ):
        patterns += [{"label": label, "pattern": p, "id": label.lower()} for p in group]
    return patterns


def add_entity_ruler(nlp: Language, *, name: str = "entity_ruler") -> None:
    """Add the rule entities after the statistical NER, never overwriting its entities."""
    after = "ner" if "ner" in nlp.pipe_names else None
    ruler = nlp.add_pipe("entity_ruler", name=name, after=after, config={"overwrite_ents": False, "validate": True})
    ruler.add_patterns(rule_patterns())  # type: ignore[attr-defined]
