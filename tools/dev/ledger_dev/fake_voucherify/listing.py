"""The query of ``GET /v1/redemptions`` as ``redemptions.json`` documents it, read and checked (``ListQuery``).

- ``limit`` 1–100 (default 10), ``page`` 1–99 (default 1): anything else is ``400 invalid_query_params``;
- ``created_at[after]`` / ``created_at[before]``: ISO 8601 (``2016-11-16T14:14:31Z``, ``2016-11-16``; no offset
  means UTC), both **exclusive**: an object created exactly at ``after`` or at ``before`` is not listed;
- ``order``: ``created_at``, ``-created_at`` (the default: most recent first, as the API lists), ``id``,
  ``voucher_code``, ``tracking_id``, ``customer_id`` and each with ``-`` (ties in ``created_at`` order);
- ``result`` (``SUCCESS`` / ``FAILURE``, repeatable), ``customer`` (a customer's ``id`` or ``source_id``),
  ``campaign`` (a campaign's name);
- ``filters[<field>][conditions][$op]`` (deepObject; a list for ``$in`` / ``$not_in`` as repeated parameters or
  ``[$in][0]``, ``[$in][1]`` …) for the fields ``ParameterFiltersListRedemptions`` names, every condition of one
  field must hold, and ``filters[junction]`` (``and``, the default, or ``or``) joins the fields.

The error key ``invalid_query_params`` is the fake's (redemptions.json documents the error body's shape —
``code``, ``key``, ``message``, ``details``, ``request_id`` — but no example of a refused query).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT, MAX_LIMIT, MAX_PAGE = 10, 100, 99
ORDERS = ("created_at", "id", "voucher_code", "tracking_id", "customer_id")
INVALID_QUERY = (400, "invalid_query_params", "Invalid query params")


class InvalidQuery(ValueError):
    """A parameter the API refuses: ``details`` names it and what it takes."""


def _voucher(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("voucher") or {}


def _campaign_id(obj: dict[str, Any]) -> Any:
    tier_campaign = (obj.get("promotion_tier") or {}).get("campaign") or {}
    return _voucher(obj).get("campaign_id") or tier_campaign.get("id")


# The filterable fields (ParameterFiltersListRedemptions) and where each is in an object.
FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "object": lambda o: o.get("object"),
    "parent_redemption_id": lambda o: o.get("redemption") if o.get("object") == "redemption" else None,
    "result": lambda o: o.get("result"),
    "voucher_code": lambda o: _voucher(o).get("code"),
    "related_object_id": lambda o: o.get("related_object_id"),
    "related_object_parent_id": _campaign_id,
    "failure_code": lambda o: o.get("failure_code"),
    "customer_id": lambda o: o.get("customer_id"),
    "campaign_name": lambda o: _voucher(o).get("campaign"),
    "user_login": lambda o: None,  # the fake's redemptions are all made through the API
}

CONDITIONS: dict[str, Callable[[Any, Any], bool]] = {
    "$is": lambda v, x: v is not None and str(v) == x,
    "$is_not": lambda v, x: v is None or str(v) != x,
    "$in": lambda v, xs: v is not None and str(v) in xs,
    "$not_in": lambda v, xs: v is None or str(v) not in xs,
    "$has_value": lambda v, _: v is not None,
    "$is_unknown": lambda v, _: v is None,
    "$starts_with": lambda v, x: v is not None and str(v).startswith(x),
    "$ends_with": lambda v, x: v is not None and str(v).endswith(x),
    "$contains": lambda v, x: v is not None and x in str(v),
    "$not_contain": lambda v, x: v is None or x not in str(v),
}
LIST_CONDITIONS = ("$in", "$not_in")
_FILTER = re.compile(r"^filters\[(?P<field>[^\]]+)\](?:\[conditions\]\[(?P<op>\$[a-z_]+)\](?:\[\d+\])?)?$")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any  # a str, or a tuple of them for $in / $not_in

    def holds(self, obj: dict[str, Any]) -> bool:
        return CONDITIONS[self.op](FIELDS[self.field](obj), self.value)


@dataclass(frozen=True)
class ListQuery:
    limit: int = DEFAULT_LIMIT
    page: int = 1
    after_us: int | None = None  # created_at[after], microseconds since the epoch (exclusive)
    before_us: int | None = None  # created_at[before] (exclusive)
    order: str = "-created_at"
    results: tuple[str, ...] = ()
    customer: str | None = None
    campaign: str | None = None
    conditions: tuple[Condition, ...] = ()
    junction: str = "and"
    filtered: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        filtered = bool(self.results or self.customer or self.campaign or self.conditions)
        object.__setattr__(self, "filtered", filtered)

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.results and obj.get("result") not in self.results:
            return False
        if self.customer and self.customer not in (
            obj.get("customer_id"),
            (obj.get("customer") or {}).get("source_id"),
        ):
            return False
        if self.campaign and _voucher(obj).get("campaign") != self.campaign:
            return False
        if not self.conditions:
            return True
        by_field: dict[str, bool] = {}
        for condition in self.conditions:
            by_field[condition.field] = by_field.get(condition.field, True) and condition.holds(obj)
        return all(by_field.values()) if self.junction == "and" else any(by_field.values())

    def sort_key(self) -> tuple[str, bool] | None:
        """(the field to sort by, descending), or None for created_at order (the history's own)."""
        name = self.order.removeprefix("-")
        return None if name == "created_at" else (name, self.order.startswith("-"))


def micros(moment: datetime) -> int:
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_time(name: str, value: str) -> int:
    try:
        return micros(datetime.fromisoformat(value.strip()))
    except ValueError:
        raise InvalidQuery(f"{name} must be a date in ISO 8601 format, e.g. 2016-11-16T14:14:31Z") from None


def _integer(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidQuery(f"{name} must be an integer between {low} and {high}")
    return number


def parse_query(pairs: Iterable[tuple[str, str]]) -> ListQuery:
    """The query of a list request (its parameters in order, repeats kept); ``InvalidQuery`` for what is refused."""
    options: dict[str, Any] = {}
    results: list[str] = []
    lists: dict[tuple[str, str], list[str]] = {}
    singles: dict[tuple[str, str], str] = {}
    for name, value in pairs:
        if name == "limit":
            options["limit"] = _integer("limit", value, 1, MAX_LIMIT)
        elif name == "page":
            options["page"] = _integer("page", value, 1, MAX_PAGE)
        elif name in ("created_at[after]", "created_at[before]"):
            options["after_us" if name.endswith("[after]") else "before_us"] = parse_time(name, value)
        elif name == "order":
            if value.removeprefix("-") not in ORDERS:
                raise InvalidQuery(f"order must be one of {', '.join(o + ', -' + o for o in ORDERS)}")
            options["order"] = value
        elif name == "result":
            if value not in ("SUCCESS", "FAILURE"):
                raise InvalidQuery("result must be SUCCESS or FAILURE")
            results.append(value)
        elif name in ("customer", "campaign"):
            options[name] = value
        elif name == "filters[junction]":
            if value.lower() not in ("and", "or"):
                raise InvalidQuery("filters[junction] must be and or or")
            options["junction"] = value.lower()
        elif name.startswith("filters["):
            _filter(name, value, lists, singles)
    conditions = [Condition(f, op, v) for (f, op), v in singles.items()]
    conditions += [Condition(f, op, tuple(v)) for (f, op), v in lists.items()]
    return ListQuery(results=tuple(results), conditions=tuple(conditions), **options)


def _filter(
    name: str, value: str, lists: dict[tuple[str, str], list[str]], singles: dict[tuple[str, str], str]
) -> None:
    match = _FILTER.match(name)
    if match is None or match.group("op") is None:
        raise InvalidQuery(f"{name}: expected filters[<field>][conditions][<$condition>] or filters[junction]")
    where, op = match.group("field"), match.group("op")
    if where not in FIELDS:
        raise InvalidQuery(f"filters: unknown field {where} (one of {', '.join(FIELDS)})")
    if op not in CONDITIONS:
        raise InvalidQuery(f"filters[{where}]: unknown condition {op} (one of {', '.join(CONDITIONS)})")
    if op in LIST_CONDITIONS:
        lists.setdefault((where, op), []).append(value)
    else:
        singles[(where, op)] = value
