"""A ClickHouse-compatible tokeniser for HQL, the ground the validator stands on.

Why a lexer and not regular expressions: the reference implementation's regex validator was
bypassed across tenants (a table function behind a comment or in quotes, a ``SETTINGS``
clause hidden after a literal holding ``--``). Tokenising the way ClickHouse does means a
keyword inside a string literal or a comment is never mistaken for one, and one outside is
never missed. The validated query is then **re-emitted from the tokens** with comments
dropped, so the engine only ever executes text whose structure this module has seen: a
comment cannot swallow what the gateway appends, and a literal cannot end anywhere else than
where ClickHouse ends it.

What is refused here, whatever the context, because ClickHouse would read it in a way the
validator cannot follow or HQL does not need: quoted identifiers (backticks and double
quotes: ``"system"."tables"``), heredocs (``$$ ... $$``), ``#`` comments, query parameters
(``{name:Type}``, reserved for the gateway's own), unterminated literals and block comments,
and any character outside ASCII (outside literals and comments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from logging_pipeline.hql.errors import HqlError

Kind = Literal["ident", "number", "string", "op", "comment"]

_OPERATORS = ("::", "->", "||", "<=", ">=", "!=", "<>", "==")
_SINGLE = set("()[],.;+-*/%=<>?:")
_IDENT_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_PART = _IDENT_START | set("0123456789")
_DIGITS = set("0123456789")
_NUMBER_PART = set("0123456789abcdefABCDEFxXpP._")


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its exact source text and where it starts (a character offset)."""

    kind: Kind
    text: str
    position: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def is_word(self, *words: str) -> bool:
        """Whether this is a bare identifier/keyword equal (case-insensitively) to one of
        ``words``."""
        return self.kind == "ident" and self.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.text in ops


def _syntax(details: str) -> HqlError:
    return HqlError("HQL_SYNTAX_ERROR", details)


def _injection(details: str) -> HqlError:
    return HqlError("HQL_SQL_INJECTION_ATTEMPT", details)


def tokenize(sql: str, *, keep_comments: bool = False) -> list[Token]:
    """The tokens of ``sql`` without whitespace (and without comments unless asked).

    Raises :class:`HqlError` for anything listed in the module docstring.
    """
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in " \t\r\n\f\v":
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            if keep_comments:
                tokens.append(Token("comment", sql[i:end], i))
            i = end
        elif sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
            if keep_comments:
                tokens.append(Token("comment", sql[i:end], i))
            i = end
        elif char == "#":
            raise _injection(f"'#' comments are not allowed (position {i})")
        elif char == "'":
            end = _string_end(sql, i)
            tokens.append(Token("string", sql[i:end], i))
            i = end
        elif char in '`"':
            raise _injection(f"quoted identifiers ({char}...{char}) are not allowed (position {i})")
        elif char == "$":
            raise _injection(f"heredocs and '$' are not allowed (position {i})")
        elif char in "{}":
            raise _injection(f"query parameters ({{...}}) are not allowed (position {i})")
        elif char in _IDENT_START:
            start = i
            while i < n and sql[i] in _IDENT_PART:
                i += 1
            tokens.append(Token("ident", sql[start:i], start))
        elif char in _DIGITS or (
            char == "." and i + 1 < n and sql[i + 1] in _DIGITS and not _after_operand(tokens)
        ):
            end = _number_end(sql, i)
            tokens.append(Token("number", sql[i:end], i))
            i = end
        elif sql[i : i + 2] in _OPERATORS:
            tokens.append(Token("op", sql[i : i + 2], i))
            i += 2
        elif char in _SINGLE:
            tokens.append(Token("op", char, i))
            i += 1
        else:
            raise _syntax(f"unexpected character {char!r} at position {i}")
    return tokens


def _block_comment_end(sql: str, start: int) -> int:
    """The offset after a ``/* ... */`` comment (ClickHouse nests them; so does this)."""
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise _injection(f"unterminated block comment starting at position {start}")


def _string_end(sql: str, start: int) -> int:
    """The offset after a string literal: ``\\`` escapes the next character, ``''`` is a quote."""
    i, n = start + 1, len(sql)
    while i < n:
        char = sql[i]
        if char == "\\":
            i += 2
        elif char == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise _injection(f"unterminated string literal starting at position {start}")


def _number_end(sql: str, start: int) -> int:
    """The offset after a numeric literal (decimal, float with exponent, hex, binary)."""
    i, n = start, len(sql)
    while i < n:
        char = sql[i]
        if char in _NUMBER_PART:
            i += 1
        elif char in "+-" and sql[i - 1] in "eEpP" and not sql[start:i].lower().startswith("0x"):
            i += 1
        else:
            break
    if i < n and sql[i] in _IDENT_START:
        raise _syntax(f"malformed number {sql[start : i + 1]!r} at position {start}")
    return i


def _after_operand(tokens: list[Token]) -> bool:
    """Whether a ``.`` here accesses an element (``t.1``) rather than starting ``.5``."""
    if not tokens:
        return False
    last = tokens[-1]
    return last.kind == "ident" or last.is_op(")", "]")


def render(tokens: list[Token]) -> str:
    """Tokens back to SQL, comments dropped.

    Tokens that touched in the source still touch (``t.1``, ``a::Int8``); tokens that were
    apart, or that the rewriter inserted (``position`` -1), are separated by one space.
    """
    parts: list[str] = []
    previous_end = -1
    for token in tokens:
        if token.kind == "comment":
            continue
        if parts and not (token.position >= 0 and token.position == previous_end):
            parts.append(" ")
        parts.append(token.text)
        previous_end = token.position + len(token.text) if token.position >= 0 else -1
    return "".join(parts)
