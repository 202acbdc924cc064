"""Text structure that sentences do not run across: markdown headings, list items, quotes and
paragraphs.

A parser reads "# Omar\\nOmar Haddad is a designer." as one sentence whose subject is "# Omar
Omar Haddad". :func:`blocks` cuts a text where its structure says a sentence cannot go on; the
extractor parses each block on its own and joins the parses back into one document with the
text's own character offsets. Lines wrapped inside a paragraph or a list item stay together.
"""

from __future__ import annotations

import re

# A line that opens a block of its own: a heading, a list item, a quote, a table row or a rule.
_BLOCK_START = re.compile(r"[ \t]{0,3}(?:#{1,6}[ \t]|[-*+][ \t]|\d{1,3}[.)][ \t]|>|\||(?:[-*_][ \t]*){3,}$)")
# A line that ends its block: a heading or a rule is never continued by the next line.
_BLOCK_END = re.compile(r"[ \t]{0,3}(?:#{1,6}[ \t]|(?:[-*_][ \t]*){3,}$)")


def blocks(text: str) -> list[str]:
    """``text`` cut into blocks whose concatenation is ``text``: a new block starts after a
    blank line, at a line that opens a block (a heading, a list item, a quote, a table row, a
    rule) and after a heading or a rule. Blank lines stay with the block before them."""
    pieces: list[str] = []
    current = ""
    ended = False  # the current block cannot be continued (after a blank line, heading or rule)
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        if current and not blank and (ended or _BLOCK_START.match(line)):
            pieces.append(current)
            current = ""
            ended = False
        current += line
        if (current.strip() and blank) or (not blank and _BLOCK_END.match(line)):
            ended = True
    if current or not pieces:
        pieces.append(current)
    return pieces
