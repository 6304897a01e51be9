"""Helicone's template language: ``{{hc:name:type}}`` variables (prompts-and-peer-apis.md D.1).

Pure functions over JSON values; nothing here evaluates or executes template text. Types:
``number`` and ``boolean`` are checked (a JSON number, or a string that reads as one — what
JavaScript's ``Number()`` accepts, so ``"25"`` and ``""`` pass; a JSON boolean, or
``true``/``false``/``yes``/``no`` in any case); any other type name (``string``, ``array``…) is
not. Each bad input gives one error, ``Variable 'age' is 'number' but got 'abc'``.

In message text (:func:`substitute_text`) a tag becomes its input rendered as text (strings
as they are, numbers without a ``.0``, objects and arrays as compact JSON); an absent (or null)
input leaves the tag as written. In JSON (:func:`substitute_json`: tools, response formats)
every variable must be given; a string value that is wholly one tag becomes the typed input
(an array stays an array, ``"25"`` for a number becomes ``25``), an embedded tag is replaced
as text, in keys too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

VARIABLE = re.compile(
    r"\{\{\s*hc\s*:\s*([a-zA-Z_-][a-zA-Z0-9_-]*)\s*:\s*([a-zA-Z_-][a-zA-Z0-9_-]*)\s*\}\}"
)
WHOLE_VARIABLE = re.compile(rf"^{VARIABLE.pattern}$")
MUSTACHE = re.compile(r"\{\{([\w.-]+)\}\}")
"""PostHog's SDK placeholders, rendered for versions marked ``mustache`` (E.6)."""
_JS_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity)|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+"
)
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no"})


@dataclass(frozen=True, slots=True)
class TemplateError:
    """One bad or missing input."""

    variable: str
    expected: str
    value: Any

    @property
    def message(self) -> str:
        if self.value is _MISSING:
            return f"Variable '{self.variable}' is required (type '{self.expected}') but missing"
        return f"Variable '{self.variable}' is '{self.expected}' but got {_shown(self.value)}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return orjson.dumps(value).decode()


def is_number(value: Any) -> bool:
    """A JSON number, or a string JavaScript's ``Number()`` reads as one (``""`` included)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        text = value.strip()
        return not text or _JS_NUMBER.fullmatch(text) is not None
    return False


def is_boolean(value: Any) -> bool:
    return isinstance(value, bool) or (
        isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS
    )


def check(name: str, type_name: str, value: Any) -> TemplateError | None:
    """The error for ``value`` as an input of type ``type_name``, or None when it fits."""
    if type_name == "number" and not is_number(value):
        return TemplateError(name, type_name, value)
    if type_name == "boolean" and not is_boolean(value):
        return TemplateError(name, type_name, value)
    return None


def render(value: Any) -> str:
    """An input as text: ``True`` -> ``true``, ``1.0`` -> ``1``, containers as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    return orjson.dumps(value).decode()


def typed(type_name: str, value: Any) -> Any:
    """An input as the value that replaces a whole-tag JSON string: a number or boolean type
    turns a numeric or boolean word into a JSON number or boolean; others stay as given."""
    if isinstance(value, str):
        text = value.strip()
        if type_name == "number" and is_number(text):
            return _js_number(text)
        if type_name == "boolean" and is_boolean(text):
            return text.lower() in ("true", "yes")
    return value


def _js_number(text: str) -> int | float:
    if not text:
        return 0
    lowered = text.lower()
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if lowered.startswith(prefix):
            return int(text[2:], base)
    if "Infinity" in text:
        return float(text.replace("Infinity", "inf"))
    number = float(text)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def variables(text: str) -> dict[str, str]:
    """The variables a text uses, name -> type (the first occurrence's type wins)."""
    found: dict[str, str] = {}
    for match in VARIABLE.finditer(text):
        found.setdefault(match.group(1), match.group(2))
    return found


def _given(inputs: Mapping[str, Any], name: str) -> Any:
    value = inputs.get(name, _MISSING)
    return _MISSING if value is None else value


def substitute_text(text: str, inputs: Mapping[str, Any]) -> tuple[str, list[TemplateError]]:
    """``text`` with its tags replaced (D.1.2); on any bad input the text is returned as it
    was, with the errors. A missing input is not an error: its tag stays."""
    if "{{" not in text:
        return text, []
    errors: list[TemplateError] = []
    for name, type_name in variables(text).items():
        value = _given(inputs, name)
        if value is not _MISSING:
            error = check(name, type_name, value)
            if error is not None:
                errors.append(error)
    if errors:
        return text, errors

    def replace(match: re.Match[str]) -> str:
        value = _given(inputs, match.group(1))
        return match.group(0) if value is _MISSING else render(value)

    return VARIABLE.sub(replace, text), []


def substitute_mustache(text: str, inputs: Mapping[str, Any]) -> str:
    """PostHog's ``{{name}}``: replaced by the input as text; an unknown one stays."""
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        value = _given(inputs, match.group(1))
        return match.group(0) if value is _MISSING else render(value)

    return MUSTACHE.sub(replace, text)


def substitute_json(value: Any, inputs: Mapping[str, Any]) -> tuple[Any, list[TemplateError]]:
    """A copy of the JSON ``value`` with its tags replaced (D.1.3), and the errors: each
    variable used must be given and fit its type, a key that is wholly a tag needs a string
    (else the pair is dropped)."""
    errors: list[TemplateError] = []
    seen: set[str] = set()

    def report(error: TemplateError) -> None:
        if error.variable not in seen:
            seen.add(error.variable)
            errors.append(error)

    def text(source: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, type_name = match.group(1), match.group(2)
            given = _given(inputs, name)
            if given is _MISSING:
                report(TemplateError(name, type_name, _MISSING))
                return match.group(0)
            error = check(name, type_name, given)
            if error is not None:
                report(error)
                return match.group(0)
            return render(given)

        return VARIABLE.sub(replace, source)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if "{{" not in node:
                return node
            whole = WHOLE_VARIABLE.match(node)
            if whole is None:
                return text(node)
            name, type_name = whole.group(1), whole.group(2)
            given = _given(inputs, name)
            if given is _MISSING:
                report(TemplateError(name, type_name, _MISSING))
                return node
            error = check(name, type_name, given)
            if error is not None:
                report(error)
                return node
            return typed(type_name, given)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, item in node.items():
                new_key = key
                if "{{" in key:
                    whole = WHOLE_VARIABLE.match(key)
                    if whole is not None:
                        given = _given(inputs, whole.group(1))
                        if not isinstance(given, str):
                            report(TemplateError(whole.group(1), "string", given))
                            continue
                        new_key = given
                    else:
                        new_key = text(key)
                out[new_key] = walk(item)
            return out
        return node

    result = walk(value)
    return result, errors
