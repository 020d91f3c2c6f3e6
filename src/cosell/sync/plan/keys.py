"""The typed key: what `referral:<id>` and `salesforce:<SObject>:<id>` name, read once."""

from __future__ import annotations

from dataclasses import dataclass

from cosell.mapping.model import OPPORTUNITY
from cosell.store.types import Key, parse_key


@dataclass(frozen=True)
class KeyRef:
    """One parsed key (`KeyRef.parse`): a referral, or a Salesforce record.

    Attributes:
        key: the key as given.
        referral_id: the referral's id (a referral key), else None.
        sobject: the record's SObject (a Salesforce key), else None.
        record_id: the record's 18-character id (a Salesforce key), else None.
    """

    key: Key
    referral_id: str | None = None
    sobject: str | None = None
    record_id: str | None = None

    @classmethod
    def parse(cls, key: Key | str) -> KeyRef:
        """Parse a key.

        Raises:
            KeyFormatError: the key is neither form (the message shows both).
        """
        parts = parse_key(key)
        if parts[0] == "referral":
            return cls(Key(key), referral_id=parts[1])
        return cls(Key(key), sobject=parts[1], record_id=parts[2])

    @property
    def is_referral(self) -> bool:
        """Whether the key names a referral."""
        return self.referral_id is not None

    @property
    def is_opportunity(self) -> bool:
        """Whether the key names an opportunity."""
        return self.sobject == OPPORTUNITY
