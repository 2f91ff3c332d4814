"""Which characters may be stored in text that people write, and what counts as visible.

Text that people write is shown to other people: in apps, notifications and admin
screens, in logs. Characters with no place in such text are refused rather than
silently dropped, so the writer sees what was wrong:

- controls (Unicode category Cc: NUL, escape, CR, ...), except a tab or a line break in
  text of several lines (descriptions, messages, reasons); line breaks are stored as
  `\n`, and U+2028/U+2029 count as line breaks;
- bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
  make a text display in another order than it is read ("Trojan Source");
- surrogates (Cs; lone ones are refused at the transport already), private-use (Co)
  and unassigned code points (Cn), which mean nothing to the reader.

Other format characters (Cf) stay: the zero-width joiner builds emoji and Indic
ligatures, the left-to-right mark places punctuation in Arabic and Hebrew. But text
must show something: whitespace, format characters and the other default-ignorable
code points (the Hangul filler, variation selectors) alone are refused.
"""

from __future__ import annotations

import regex

INVISIBLE = "Must contain visible characters, not only spaces or invisible ones."

_LINE_BREAKS = regex.compile(r"\r\n|[\r\u2028\u2029]")
_NEVER = r"\p{Cs}\p{Co}\p{Cn}\u202A-\u202E\u2066-\u2069\x00-\x08\x0B-\x1F\x7F-\x9F"
_FORBIDDEN_IN_LINES = regex.compile(f"[{_NEVER}]")
_FORBIDDEN_IN_A_LINE = regex.compile(f"[{_NEVER}\\t\\n\\u2028\\u2029]")
# U+2800 (the blank Braille pattern) is a symbol, yet shows nothing.
_VISIBLE = regex.compile(r"[^\p{White_Space}\p{C}\p{Z}\p{Default_Ignorable_Code_Point}\u2800]")


def unify_line_breaks(value: str) -> str:
    return _LINE_BREAKS.sub("\n", value)


def problem(value: str, *, multiline: bool) -> str | None:
    """Why `value` cannot be stored, or None. Line breaks must be unified first."""
    forbidden = (_FORBIDDEN_IN_LINES if multiline else _FORBIDDEN_IN_A_LINE).search(value)
    if forbidden is None:
        return None
    found = f"U+{ord(forbidden.group()):04X}"
    if not multiline and forbidden.group() in "\t\n\r\u2028\u2029":
        return f"Must be a single line (found {found} at position {forbidden.start()})."
    return (
        "Must not contain control, private-use, unassigned or direction-override "
        f"characters (found {found} at position {forbidden.start()})."
    )


def has_visible(value: str) -> bool:
    return _VISIBLE.search(value) is not None
