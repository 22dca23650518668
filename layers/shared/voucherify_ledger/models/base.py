"""The base of every Voucherify payload model: unknown fields are kept (``extra="allow"``), as Voucherify adds fields
over time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class VoucherifyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


Metadata = dict[str, Any]
