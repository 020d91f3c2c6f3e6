"""Partner Center's referral id and its check, importing nothing heavy.

`cosell.store.types` checks referral ids in every key it parses; keeping the check here lets the
store (and `cosell status`, `audit`) load without the pydantic referral models.
`cosell.partnercenter.models` re-exports both.
"""

from __future__ import annotations

import re
from typing import NewType

ReferralId = NewType("ReferralId", str)

# Partner Center's referral ids are GUIDs; any id that is one URL path segment of unreserved
# characters is accepted (the sandbox and older records use other spellings), so `.`, `..`,
# `/`, `%2F`, spaces, control characters and unpaired surrogates never reach a URL or the store.
# 128 bounds an id well above a GUID's 36 characters.
_REFERRAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")


def check_referral_id(value: str) -> ReferralId:
    """Return `value` as a `ReferralId` when it can be one.

    Raises:
        ValueError: it is empty, too long, or holds a character outside letters, digits and
            `-._~` (or starts with one of `-._~`); the message says what is expected.
    """
    if not isinstance(value, str) or not _REFERRAL_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a referral id: Partner Center's are letters, digits and '-' "
            "(up to 128 characters), e.g. 2a1c5f0e-8d0b-4f4e-9b7a-5d1f3c2e7a10"
        )
    return ReferralId(value)
