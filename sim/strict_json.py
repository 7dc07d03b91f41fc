"""Strict JSON (RFC 8259 has no NaN or Infinity): non-finite floats become null, e.g. the swing-up
time of an episode that never swung up or an unbounded confidence interval."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every non-finite float, at any depth of dicts, lists and tuples, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Indented strict JSON of `value`."""
    return json.dumps(finite(value), indent=2, allow_nan=False)
