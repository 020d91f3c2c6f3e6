"""The one place that knows the sizes the pipeline works in."""

from __future__ import annotations

from typing import Final

from cosell.salesforce.client import COMPOSITE_LIMIT

BATCH_SIZE: Final = 200
"""Keys per batch: one SOQL `IN` list, one sObject-collection call, one sweep page (`$top`)."""

MAX_ATTEMPTS: Final = 3
"""Read-decide-write rounds of one reconcile while its writes meet concurrent edits (412)."""

__all__ = ["BATCH_SIZE", "COMPOSITE_LIMIT", "MAX_ATTEMPTS"]
