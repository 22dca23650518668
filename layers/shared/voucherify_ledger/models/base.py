"""The base of every Voucherify payload model: unknown fields are kept (``extra="allow"``), as Voucherify adds fields
over time.

The models' validators are built when a function asks for them (``build``, during its init), not when their classes
are defined: a function builds the few it validates with (a webhook route its data model and its whole-envelope
model), each once, with the models they nest inlined, instead of a validator for each of the ~50 classes at import.
A model used without being built is built on its first use, as pydantic does with ``defer_build``; under a lock, so
that the threads of a batch that first use it together build it once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pydantic._internal._namespace_utils import MappingNamespace

_BUILDING = threading.RLock()  # re-entrant: a model's build may complete the models it nests


class VoucherifyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

    @classmethod
    def model_rebuild(
        cls,
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: MappingNamespace | None = None,
    ) -> bool | None:
        """pydantic's ``model_rebuild``, one thread at a time: a model another thread has just built is not built
        again."""
        with _BUILDING:
            if cls.__pydantic_complete__ and not force:
                return None
            return super().model_rebuild(
                force=force,
                raise_errors=raise_errors,
                _parent_namespace_depth=_parent_namespace_depth + 1,  # this frame is one more above the caller's
                _types_namespace=_types_namespace,
            )


Metadata = dict[str, Any]


def build(*models: type[BaseModel]) -> None:
    """Builds the validators (and serializers) of ``models`` now, each at most once."""
    for model in models:
        if not model.__pydantic_complete__:
            model.model_rebuild()
