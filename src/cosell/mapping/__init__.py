"""Declarative mapping between Partner Center referrals and Salesforce records.

A mapping file (YAML, `default-mapping.yaml` ships with cosell) names, per canonical field, the
Partner Center path, the Salesforce field, the direction, the conflict owner and the transform.
The merge compares canonical values (`types.Value`); this package turns each side's data into
them and canonical changes back into each side's writes.

- `types`: the shared vocabulary (Value, Direction, Owner, FieldRule).
- `model`: the pydantic model of the file (`Mapping`, `FieldMapping`, `StageTable`), `Problem`,
  `MappingError`.
- `loader`: `load_mapping` / `parse_mapping`, every problem at its file:line:column.
- `transforms`: text, amount, currency, date, country, boolean, picklist (and the stage table).
- `countries`: ISO 3166-1 codes from codes and names.
- `referral_paths`: the referral members a mapping may name, read from the Partner Center models.
- `convert`: read values from both sides, turn changes into JSON Patch and Salesforce updates,
  build create payloads.
- `check`: `check_mapping`, a mapping against the org's describe and the referral model.

Nothing here does I/O except reading the mapping file; `check_mapping` takes the describe
results as a function.
"""

from cosell.mapping.check import check_mapping, creates_record_type
from cosell.mapping.convert import (
    SalesforceRecords,
    new_referral_body,
    new_salesforce_records,
    partner_center_operations,
    partner_center_values,
    salesforce_query_fields,
    salesforce_updates,
    salesforce_values,
)
from cosell.mapping.loader import load_mapping, parse_mapping
from cosell.mapping.model import (
    ChildObject,
    Collections,
    FieldMapping,
    Mapping,
    MappingError,
    OpportunityFields,
    Problem,
    SolutionObject,
    StageTable,
)
from cosell.mapping.transforms import ValueMappingError
from cosell.mapping.types import STAGE_FIELD, Direction, FieldRule, Owner, Value

__all__ = [
    "STAGE_FIELD",
    "ChildObject",
    "Collections",
    "Direction",
    "FieldMapping",
    "FieldRule",
    "Mapping",
    "MappingError",
    "OpportunityFields",
    "Owner",
    "Problem",
    "SalesforceRecords",
    "SolutionObject",
    "StageTable",
    "Value",
    "ValueMappingError",
    "check_mapping",
    "creates_record_type",
    "load_mapping",
    "new_referral_body",
    "new_salesforce_records",
    "parse_mapping",
    "partner_center_operations",
    "partner_center_values",
    "salesforce_query_fields",
    "salesforce_updates",
    "salesforce_values",
]
