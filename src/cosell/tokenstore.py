"""Refresh tokens kept in a file, with what token health needs to know about them.

`cosell connect` stores the refresh token an admin's sign-in gave; the clients replace it each
time the identity provider rotates it. The file is JSON, readable by its owner only (mode
0600), written atomically (a temporary file in the same directory, then a rename, so a crash
leaves the old or the new token, never half of one):

    {"refresh_token": "...", "grant": "device_code", "mfa": true, "user": "admin@...",
     "connected_at": "...", "rotated_at": "...", "used_at": "..."}

A file holding only the token's text (what earlier versions wrote, or what an admin puts in
a Kubernetes secret) is read as a token with no record. A file that group or others can read
or write is refused rather than used.

Nothing here logs or returns the token except `load()`; `record()` never includes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cosell.clock import Clock, SystemClock


class TokenFileError(Exception):
    """The token file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class TokenRecord:
    """What is known about a stored refresh token (never the token itself).

    Attributes:
        grant: how it was obtained (`device_code`, `authorization_code`, `web_server`, ...),
            or None when it was put in the file by hand.
        mfa: the sign-in used multi-factor authentication; None when unknown.
        user: who signed in, when known.
        connected_at: when `cosell connect` stored it.
        rotated_at: when the current token replaced the previous one.
        used_at: when it was last redeemed (or stored).
    """

    grant: str | None = None
    mfa: bool | None = None
    user: str | None = None
    connected_at: datetime | None = None
    rotated_at: datetime | None = None
    used_at: datetime | None = None

    def last_activity(self) -> datetime | None:
        """The newest of `used_at`, `rotated_at` and `connected_at`."""
        times = [t for t in (self.used_at, self.rotated_at, self.connected_at) if t is not None]
        return max(times) if times else None

    def expires_at(self, inactivity: timedelta) -> datetime | None:
        """When the token dies of inactivity if it is not used before."""
        last = self.last_activity()
        return None if last is None else last + inactivity

    def as_json(self) -> dict[str, Any]:
        """The record as JSON-able data (times in ISO 8601)."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


_TIMES = ("connected_at", "rotated_at", "used_at")


def _record_from(data: dict[str, Any]) -> TokenRecord:
    def when(key: str) -> datetime | None:
        value = data.get(key)
        if not isinstance(value, str):
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None

    grant, user, mfa = data.get("grant"), data.get("user"), data.get("mfa")
    return TokenRecord(
        grant=grant if isinstance(grant, str) else None,
        mfa=mfa if isinstance(mfa, bool) else None,
        user=user if isinstance(user, str) else None,
        **{key: when(key) for key in _TIMES},
    )


class FileTokenStore:
    """A refresh token and its record in a file readable only by its owner (mode 0600).

    Args:
        path: the file.
        clock: stamps `rotated_at`, `used_at` and `connected_at`.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def load(self) -> str | None:
        """The stored refresh token, or None when the file does not exist or is empty.

        Raises:
            TokenFileError: the file is accessible by group or others, or unreadable.
        """
        data = self._read()
        token = data.get("refresh_token")
        return token if isinstance(token, str) and token else None

    def record(self) -> TokenRecord:
        """What is known about the stored token (an empty record when nothing is)."""
        return _record_from(self._read())

    def save(self, refresh_token: str) -> None:
        """Replace the token (a rotation), keeping its record; stamps rotated and used."""
        data = self._read()
        now = self._clock.now().isoformat()
        data.update(refresh_token=refresh_token, rotated_at=now, used_at=now)
        self._write(data)

    def connect(
        self, refresh_token: str, *, grant: str, mfa: bool | None, user: str | None
    ) -> TokenRecord:
        """Store the token of a new sign-in with its record; returns the record."""
        now = self._clock.now()
        record = TokenRecord(
            grant=grant, mfa=mfa, user=user, connected_at=now, rotated_at=now, used_at=now
        )
        self._write({"refresh_token": refresh_token, **record.as_json()})
        return record

    def touch(self) -> None:
        """Stamp `used_at` (the token was redeemed and not rotated)."""
        data = self._read()
        if data.get("refresh_token"):
            data["used_at"] = self._clock.now().isoformat()
            self._write(data)

    def _read(self) -> dict[str, Any]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenFileError(
                f"the refresh token file {self.path} is accessible by other users "
                f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {self.path}`"
            )
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(
                f"the refresh token file {self.path} cannot be read ({type(exc).__name__}): "
                "check its owner, or run cosell connect again"
            ) from exc
        if not text:
            return {}
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise TokenFileError(
                    f"the refresh token file {self.path} is not valid JSON: run cosell "
                    "connect again to rewrite it"
                ) from exc
            if isinstance(data, dict):
                return data
            raise TokenFileError(
                f"the refresh token file {self.path} is not a JSON object: run cosell "
                "connect again to rewrite it"
            )
        return {"refresh_token": text}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".refresh-token-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


__all__ = ["FileTokenStore", "TokenFileError", "TokenRecord"]
