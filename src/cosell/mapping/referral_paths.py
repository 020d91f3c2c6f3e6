"""The referral paths a mapping may name, derived from the Partner Center models.

A mapping names a referral member by its path in the referral's JSON, camelCase segments
joined by `/` (`details/dealValue`, `customerProfile/address/country`). The set of known
paths is not a hand-kept list: it is read from the `Referral` pydantic model (every scalar
member, recursively through nested objects, by alias), so a field added to the model becomes
mappable without touching this module. Two more facts come from the models too:

- *updatable* paths are those `ReferralChanges.to_json_patch` can write (a change set with
  every member set is turned into a patch and its paths collected);
- *creatable* paths are the scalar members of `NewReferral`, what a POST may carry.

Lists (`team`, `target`, `details/requirements/solutions`) are known but not scalar: a field
mapping cannot name them (their sync is a separate concern: contacts, solutions). The members
of a list's first item are known as `<list>/0/<member>` (`customerProfile/team/0/email`, the
customer contact a lead's Lead is made from); Partner Center's JSON Patch writes none of them.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from cosell.partnercenter.models import (
    AssistanceRequestCode,
    CustomerMarketplaceIntent,
    NewReferral,
    PartnerRole,
    Referral,
    ReferralChanges,
    ReferralStatus,
    ReferralSubstatus,
    SolutionArea,
    SolutionPlay,
)


@dataclass(frozen=True)
class ReferralPath:
    """One member of a referral a mapping can name.

    Attributes:
        path: camelCase segments joined by `/`, e.g. `details/dealValue`.
        kind: `string`, `decimal`, `datetime`, `boolean`, `enum` or `list`.
        values: the documented values of an enum member (empty otherwise).
        updatable: a JSON Patch may change it after the referral exists.
        creatable: a new referral (POST) may carry it.
    """

    path: str
    kind: str
    values: tuple[str, ...] = ()
    updatable: bool = False
    creatable: bool = False


def _unwrap(annotation: Any) -> Any:
    """The type inside Annotated[...] and Optional[...] (the first non-None member)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(annotation) if a is not type(None)]
            annotation = members[0]
        elif hasattr(annotation, "__supertype__"):  # a NewType such as ReferralId
            annotation = annotation.__supertype__
        else:
            return annotation


def _walk(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, tuple[str, ...]]]:
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        path = f"{prefix}{alias}"
        annotation = _unwrap(info.annotation)
        if get_origin(annotation) is list:
            found[path] = ("list", ())
            item = _unwrap(get_args(annotation)[0])
            if isinstance(item, type) and issubclass(item, BaseModel):
                found.update(_walk(item, path + "/0/"))  # the first item's members
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_walk(annotation, path + "/"))
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            found[path] = ("enum", tuple(str(m.value) for m in annotation))
        elif annotation is Decimal:
            found[path] = ("decimal", ())
        elif annotation is datetime:
            found[path] = ("datetime", ())
        elif annotation is bool:
            found[path] = ("boolean", ())
        else:
            found[path] = ("string", ())
    return found


def _updatable() -> set[str]:
    every = ReferralChanges(
        name="x",
        deal_value=Decimal(1),
        currency="USD",
        closing_date_time=datetime(2000, 1, 1, tzinfo=UTC),
        notes="x",
        status=ReferralStatus.ACTIVE,
        substatus=ReferralSubstatus.ACCEPTED,
        status_reason="x",
        assistance_request_code=AssistanceRequestCode.GENERAL_OR_OTHER,
        invite_notes="x",
        consent_to_share_referral_with_microsoft_sellers=True,
        consent_to_contact=True,
        consent_to_share_info_with_others=True,
        external_reference_id="x",
        sales_stage="x",
        solutions=(),
        partner_role=PartnerRole.TRANSACTION,
        solution_area=SolutionArea.SECURITY,
        solution_play=SolutionPlay.DATA_SECURITY,
        customer_marketplace_intent=CustomerMarketplaceIntent.YES,
    )
    return {op["path"].lstrip("/") for op in every.to_json_patch()}


@cache
def referral_paths() -> dict[str, ReferralPath]:
    """Every path of the `Referral` model, with what can be written where.

    Returns:
        Path (no leading slash) to its description.
    """
    updatable = _updatable()
    creatable = set(_walk(NewReferral))
    return {
        path: ReferralPath(
            path=path,
            kind=kind,
            values=values,
            updatable=path in updatable,
            creatable=path in creatable,
        )
        for path, (kind, values) in _walk(Referral).items()
    }


def split_path(path: str) -> tuple[str, ...]:
    """The segments of a referral path (`details/dealValue` -> `("details", "dealValue")`)."""
    return tuple(segment for segment in path.strip("/").split("/") if segment)
