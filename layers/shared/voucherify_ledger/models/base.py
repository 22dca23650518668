"""The base of every Voucherify payload model: unknown fields are kept (``extra="allow"``), as Voucherify adds fields
over time.

The models' validators are built when a function asks for them (``build``, during its init), not when their classes
are defined: a function builds the few it validates with (a webhook route its data model and its whole-envelope
model), each once, with the models they nest inlined, instead of a validator for each of the ~50 classes at import.
A model used without being built is built on its first use, as pydantic does with ``defer_build``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class VoucherifyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


Metadata = dict[str, Any]


def build(*models: type[BaseModel]) -> None:
    """Builds the validators (and serializers) of ``models`` now, each at most once."""
    for model in models:
        if not model.__pydantic_complete__:
            model.model_rebuild()
