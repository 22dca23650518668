"""Lambda's event filtering (an event source mapping's ``FilterCriteria``): which records a function is sent.

A filter's ``Pattern`` is a JSON object in EventBridge's pattern syntax, matched against each record as Lambda
builds it (for DynamoDB Streams: ``eventName``, ``dynamodb.Keys``, ``dynamodb.NewImage``, …); a record is sent when
any filter matches it, and dropped otherwise (it is never retried nor sent to the on-failure destination).

``FilterPattern.parse(text)`` reads one pattern and refuses what it does not understand (a clear error at start-up,
not records silently sent or dropped); ``FilterPattern.matches(record)``; ``matches_any(filters, record)``. The
syntax supported:

- a field's pattern is an object (its sub-fields) or a list of matchers, any of which may match; a field of the record
  that is a list matches when any of its items does;
- matchers: a string, number, boolean or ``null`` (equal; numbers by value), ``{"prefix": s}`` (or
  ``{"prefix": {"equals-ignore-case": s}}``), ``{"suffix": s}`` (likewise), ``{"equals-ignore-case": s}``,
  ``{"wildcard": "a*b"}``, ``{"exists": true | false}``, ``{"numeric": [">", 0, "<=", 5]}``, ``{"anything-but": v}``
  (a value, a list of values, or ``{"prefix": s}`` / ``{"suffix": s}`` / ``{"equals-ignore-case": s | [s, …]}``);
- ``{"$or": [pattern, …]}`` beside a level's other fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_MISSING = object()
_NUMERIC_OPERATORS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterPatternError(ValueError):
    """A pattern this emulation does not understand (or that Lambda would refuse)."""


@dataclass(frozen=True)
class FilterPattern:
    """One ``FilterCriteria.Filters[].Pattern``, checked when read."""

    text: str
    pattern: Mapping[str, Any]

    @classmethod
    def parse(cls, text: str | Mapping[str, Any]) -> FilterPattern:
        pattern = json.loads(text) if isinstance(text, str) else dict(text)
        if not isinstance(pattern, dict):
            raise FilterPatternError(f"a filter pattern is a JSON object, got {text!r}")
        _check_object(pattern, "")
        return cls(text if isinstance(text, str) else json.dumps(pattern), pattern)

    def matches(self, record: Mapping[str, Any]) -> bool:
        return _object_matches(self.pattern, record)


def matches_any(filters: Iterable[FilterPattern], record: Mapping[str, Any]) -> bool:
    """True when there are no filters or one of them matches (Lambda's filters are OR'ed)."""
    filters = list(filters)
    return not filters or any(f.matches(record) for f in filters)


# --- checking a pattern -------------------------------------------------------------------------------
def _check_object(pattern: Mapping[str, Any], where: str) -> None:
    if not pattern:
        raise FilterPatternError(f"an empty pattern object at {where or 'the top'}")
    for key, value in pattern.items():
        here = f"{where}.{key}" if where else key
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, dict) for v in value):
                raise FilterPatternError(f"{here}: $or takes a list of two or more pattern objects")
            for option in value:
                _check_object(option, where)
        elif isinstance(value, dict):
            _check_object(value, here)
        elif isinstance(value, list):
            if not value:
                raise FilterPatternError(f"{here}: an empty list matches nothing")
            for matcher in value:
                _check_matcher(matcher, here)
        else:
            raise FilterPatternError(f"{here}: a field's pattern is an object or a list of matchers, got {value!r}")


def _check_matcher(matcher: Any, where: str) -> None:
    if matcher is None or isinstance(matcher, str | int | float | bool):
        return
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise FilterPatternError(f"{where}: unsupported matcher {matcher!r}")
    ((name, arg),) = matcher.items()
    if name in ("prefix", "suffix"):
        if not (isinstance(arg, str) or _is_ignore_case(arg, list_allowed=False)):
            raise FilterPatternError(f"{where}: {name} takes a string (or {{'equals-ignore-case': string}})")
    elif name in ("equals-ignore-case", "wildcard"):
        if not isinstance(arg, str):
            raise FilterPatternError(f"{where}: {name} takes a string")
    elif name == "exists":
        if not isinstance(arg, bool):
            raise FilterPatternError(f"{where}: exists takes true or false")
    elif name == "numeric":
        _check_numeric(arg, where)
    elif name == "anything-but":
        values = arg if isinstance(arg, list) else [arg]
        if isinstance(arg, dict):
            inner, inner_arg = next(iter(arg.items())) if len(arg) == 1 else (None, None)
            ok = (inner in ("prefix", "suffix") and isinstance(inner_arg, str)) or (
                inner == "equals-ignore-case" and _is_strings(inner_arg)
            )
            if not ok:
                raise FilterPatternError(f"{where}: unsupported anything-but {arg!r}")
        elif not values or not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            raise FilterPatternError(f"{where}: anything-but takes a value or a list of values")
    else:
        raise FilterPatternError(f"{where}: the matcher {name!r} is not supported by the local emulation")


def _is_ignore_case(arg: Any, *, list_allowed: bool) -> bool:
    if not isinstance(arg, dict) or set(arg) != {"equals-ignore-case"}:
        return False
    value = arg["equals-ignore-case"]
    return _is_strings(value) if list_allowed else isinstance(value, str)


def _is_strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    )


def _check_numeric(arg: Any, where: str) -> None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise FilterPatternError(f"{where}: numeric takes [op, number] or [op, number, op, number]")
    for op, number in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC_OPERATORS or isinstance(number, bool) or not isinstance(number, int | float):
            raise FilterPatternError(f"{where}: numeric takes operators of {sorted(_NUMERIC_OPERATORS)} and numbers")


# --- matching -------------------------------------------------------------------------------------------
def _object_matches(pattern: Mapping[str, Any], value: Any) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_object_matches(option, value) for option in sub):
                return False
            continue
        field = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        if isinstance(sub, dict):
            if field is _MISSING or not isinstance(field, Mapping):
                if not _only_absence(sub):
                    return False
                continue
            if not _object_matches(sub, field):
                return False
        elif not _field_matches(sub, field):
            return False
    return True


def _only_absence(pattern: Mapping[str, Any]) -> bool:
    """A nested pattern an absent object still matches: every leaf is ``{"exists": false}``."""
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_only_absence(option) for option in sub):
                return False
        elif isinstance(sub, dict):
            if not _only_absence(sub):
                return False
        elif not any(isinstance(m, dict) and m.get("exists") is False for m in sub):
            return False
    return True


def _field_matches(matchers: list[Any], field: Any) -> bool:
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            present = field is not _MISSING
            if matcher["exists"] == present:
                return True
            continue
        if field is _MISSING:
            continue
        values = field if isinstance(field, list) else [field]
        if any(_value_matches(matcher, v) for v in values):
            return True
    return False


def _value_matches(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, dict):
        return _equal(matcher, value)
    ((name, arg),) = matcher.items()
    if name == "prefix":
        return isinstance(value, str) and _affix(value, arg, str.startswith)
    if name == "suffix":
        return isinstance(value, str) and _affix(value, arg, str.endswith)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == arg.casefold()
    if name == "wildcard":
        return isinstance(value, str) and re.fullmatch(_wildcard(arg), value, re.DOTALL) is not None
    if name == "numeric":
        number = _number(value)
        return number is not None and all(
            _NUMERIC_OPERATORS[op](number, bound) for op, bound in zip(arg[::2], arg[1::2], strict=True)
        )
    if name == "anything-but":
        if isinstance(arg, dict):
            ((inner, inner_arg),) = arg.items()
            if not isinstance(value, str):
                return True
            if inner == "prefix":
                return not value.startswith(inner_arg)
            if inner == "suffix":
                return not value.endswith(inner_arg)
            options = inner_arg if isinstance(inner_arg, list) else [inner_arg]
            return value.casefold() not in {o.casefold() for o in options}
        return not any(_equal(v, value) for v in (arg if isinstance(arg, list) else [arg]))
    return False


def _affix(value: str, arg: Any, test: Any) -> bool:
    if isinstance(arg, dict):
        return bool(test(value.casefold(), arg["equals-ignore-case"].casefold()))
    return bool(test(value, arg))


def _wildcard(pattern: str) -> str:
    return ".*".join(re.escape(part) for part in pattern.split("*")) if "*" in pattern else re.escape(pattern)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _equal(expected: Any, value: Any) -> bool:
    if expected is None or value is None:
        return expected is None and value is None
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value)
