"""Salesforce record ids: key prefixes, the 18-character checksum, and minting new ids.

An id is 15 case-sensitive characters (a 3-character key prefix naming the object type, then 12
more) or the same 15 followed by a 3-character checksum that makes it safe to compare
case-insensitively (spec §2.8). The API always returns 18 characters and accepts both.

The checksum: split the 15 characters into three blocks of 5; in each block, bit i is set when
character i is an upper-case letter; each 5-bit number indexes `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345`.

`IdFactory` mints ids as `<prefix><pod><counter>`: a 2-character "pod" chosen once per org (from
the seeded random generator, so a seed reproduces the same ids) and a base-62 counter per
prefix, so ids are unique, sort in creation order within a type, and look like the real thing.
"""

from __future__ import annotations

import random
import string
from typing import NewType

SalesforceId = NewType("SalesforceId", str)

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ALNUM = frozenset(_BASE62)
_COUNTER_WIDTH = 10  # 15 characters - 3 (prefix) - 2 (pod)


def checksum(id15: str) -> str:
    """The 3-character suffix that turns a 15-character id into its 18-character form."""
    suffix = []
    for block in range(3):
        bits = 0
        for i, char in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix.append(_CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


def looks_like_id(value: str) -> bool:
    """Whether `value` has the shape of an id (15 or 18 letters and digits)."""
    return len(value) in (15, 18) and all(c in _ALNUM for c in value)


def to_18(value: str) -> SalesforceId:
    """The canonical 18-character form of a 15- or 18-character id.

    An 18-character id's checksum is compared case-insensitively (that is its purpose), and the
    first 15 characters are corrected to the case the checksum encodes.

    Raises:
        ValueError: `value` is not a well-formed id.
    """
    if not looks_like_id(value):
        raise ValueError(f"malformed id {value!r}: an id has 15 or 18 letters and digits")
    base = value[:15]
    if len(value) == 15:
        return SalesforceId(base + checksum(base))
    suffix = value[15:].upper()
    if checksum(base) == suffix:
        return SalesforceId(base + suffix)
    # The checksum exists so that an id whose case was lost can be repaired.
    repaired = []
    for block in range(3):
        bits = _CHECKSUM_ALPHABET.find(suffix[block])
        if bits < 0:
            raise ValueError(f"malformed id {value!r}: bad checksum")
        for i, char in enumerate(base[block * 5 : block * 5 + 5]):
            repaired.append(char.upper() if bits & (1 << i) else char.lower())
    fixed = "".join(repaired)
    if checksum(fixed) != suffix or fixed.lower() != base.lower():
        raise ValueError(f"malformed id {value!r}: bad checksum")
    return SalesforceId(fixed + suffix)


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise OverflowError("id counter exhausted")
    return text.rjust(width, "0")


class IdFactory:
    """Mints new 18-character ids for key prefixes; state can be saved and restored."""

    def __init__(self, rng: random.Random) -> None:
        self.pod = rng.choice(string.digits[1:]) + rng.choice(string.ascii_uppercase)
        self._counters: dict[str, int] = {}

    def new(self, prefix: str) -> SalesforceId:
        """A fresh id with the 3-character key `prefix`."""
        if len(prefix) != 3:
            raise ValueError(f"a key prefix has 3 characters, not {prefix!r}")
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        id15 = prefix + self.pod + _base62(count, _COUNTER_WIDTH)
        return SalesforceId(id15 + checksum(id15))

    def snapshot(self) -> dict[str, object]:
        """The factory's state, JSON-ready."""
        return {"pod": self.pod, "counters": dict(self._counters)}

    def restore(self, data: dict[str, object]) -> None:
        """Continue from a `snapshot`."""
        self.pod = str(data["pod"])
        counters = data["counters"]
        assert isinstance(counters, dict)
        self._counters = {str(k): int(v) for k, v in counters.items()}
