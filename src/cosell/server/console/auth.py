"""The console's sign-in: local users in a 0600 file, signed session cookies, CSRF tokens.

**Users file** (`[server] console_users_file`, default `cosell-console.json` in the working
directory), written by `cosell console set-password`, mode 0600, replaced atomically:

```json
{"session_secret": "<64 hex>",
 "users": {"admin": {"role": "operator", "hash": "scrypt$<n>$<r>$<p>$<salt hex>$<key hex>"}}}
```

Passwords are hashed with scrypt (`hashlib.scrypt`, stdlib; N=2^15, r=8, p=1, a 16-byte salt,
a 32-byte key): memory-hard, so a stolen file is slow to attack. The file, not the store,
holds them: credentials stay out of the database that holds customer data (and its backups and
replicas), and setting a password needs no database and no schema change. The file is read
again whenever it changes, so a password set while `cosell serve` runs applies at once.

**Sessions** are a cookie `cosell_console` holding `payload.signature`: the payload (user,
role, CSRF token, expiry, and a fingerprint of the user's password hash, so that a new
password signs every old session out) in URL-safe base64 JSON, signed with HMAC-SHA256 under
the file's `session_secret`. The cookie is HttpOnly, SameSite=Lax, Path=/console, and Secure
when the request came over https (or `[server] public_url` is https). Every POST must carry
the session's CSRF token in a form field `csrf`, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

COOKIE: Final = "cosell_console"
SESSION_SECONDS: Final = 8 * 3600  # a working day; then sign in again
MIN_PASSWORD_LENGTH: Final = 12
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SCRYPT_MAXMEM: Final = 128 * 1024 * 1024
_MAX_FILE_BYTES: Final = 1024 * 1024


class Role(StrEnum):
    """What a console user may do: a viewer reads, an operator also acts."""

    VIEWER = "viewer"
    OPERATOR = "operator"


class UsersFileError(Exception):
    """The users file cannot be read or written; the message says what to do."""


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """The scrypt hash of `password` with a fresh salt, parameters included."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` result (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(key)
        actual = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class User:
    """A console user as the file holds it."""

    name: str
    role: Role
    password_hash: str

    @property
    def fingerprint(self) -> str:
        """Changes when the password does: sessions carry it, so a new password ends them."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Users:
    """The users file's content."""

    session_secret: bytes
    users: dict[str, User]


def read_users(path: Path) -> Users | None:
    """The users file, or None when it does not exist.

    Raises:
        UsersFileError: it exists but cannot be read or is not a users file.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsersFileError(
            f"cannot read the console users file {path} ({error.strerror or error}); check its "
            "permissions, or set [server] console_users_file"
        ) from error
    try:
        document = json.loads(data[:_MAX_FILE_BYTES])
        secret = bytes.fromhex(document["session_secret"])
        users = {
            str(name): User(name=str(name), role=Role(entry["role"]), password_hash=entry["hash"])
            for name, entry in document["users"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsersFileError(
            f"{path} is not a console users file; move it away and run "
            "`cosell console set-password` again"
        ) from error
    if len(secret) < 32:
        raise UsersFileError(
            f"{path} holds a session secret shorter than 32 bytes; move it away and run `cosell console set-password` again"
        )
    return Users(session_secret=secret, users=users)


def set_password(path: Path, name: str, password: str, role: Role, *, n: int = SCRYPT_N) -> bool:
    """Create or update user `name` in the users file (0600, written atomically).

    Returns:
        True when the user is new.

    Raises:
        UsersFileError: the file cannot be read or written, or the password is too short.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersFileError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if not name or len(name) > 64 or not name.replace("-", "").replace(".", "").isalnum():
        raise UsersFileError(
            "a user name is 1 to 64 letters, digits, dots or hyphens, e.g. `admin`"
        )
    existing = read_users(path)
    secret = existing.session_secret if existing else secrets.token_bytes(32)
    users = dict(existing.users) if existing else {}
    new = name not in users
    users[name] = User(name=name, role=role, password_hash=hash_password(password, n=n))
    document: dict[str, Any] = {
        "session_secret": secret.hex(),
        "users": {u.name: {"role": u.role.value, "hash": u.password_hash} for u in users.values()},
    }
    directory = path.parent if str(path.parent) else Path()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".console-users-", dir=directory)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(document, handle, indent=2)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise UsersFileError(
            f"cannot write the console users file {path} ({error.strerror or error}); choose "
            "another path with --users-file or [server] console_users_file"
        ) from error
    return new


class UsersSource:
    """The users file, read again whenever its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._users: Users | None = None

    def get(self) -> Users | None:
        """The current users, None when no one has set a password yet.

        Raises:
            UsersFileError: the file is unreadable or malformed.
        """
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._users = None, None
            return None
        except OSError as error:
            raise UsersFileError(f"cannot read {self.path}: {error.strerror or error}") from error
        mark = (stat.st_mtime_ns, stat.st_size)
        if mark != self._seen:
            self._users = read_users(self.path)
            self._seen = mark
        return self._users


@dataclass(frozen=True)
class Session:
    """A signed-in user, as the cookie says."""

    user: str
    role: Role
    csrf: str
    expires: int
    fingerprint: str

    @property
    def can_act(self) -> bool:
        """Operators act; viewers only read."""
        return self.role is Role.OPERATOR


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def new_session(user: User, *, now: float) -> Session:
    """A fresh session (and CSRF token) for `user`, valid for `SESSION_SECONDS`."""
    return Session(
        user=user.name,
        role=user.role,
        csrf=secrets.token_urlsafe(24),
        expires=int(now) + SESSION_SECONDS,
        fingerprint=user.fingerprint,
    )


def encode_session(session: Session, secret: bytes) -> str:
    """The cookie value of `session`."""
    payload = _b64(
        json.dumps(
            {
                "u": session.user,
                "r": session.role.value,
                "c": session.csrf,
                "e": session.expires,
                "f": session.fingerprint,
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_signature(secret, payload)}"


def sso_user(name: str, role: Role, tenant: str) -> User:
    """A user signed in with Entra ID: not in the users file; their sessions carry the tenant."""
    return User(name=name, role=role, password_hash=f"sso:{tenant.lower()}")


def seal(secret: bytes, text: str) -> str:
    """`text` signed with HMAC-SHA256 under `secret` (readable, not forgeable)."""
    payload = _b64(text.encode())
    return f"{payload}.{_signature(secret, payload)}"


def unseal(secret: bytes, value: str | None) -> str | None:
    """The text `seal` signed, or None when `value` is missing or forged."""
    if not value or "." not in value or len(value) > 4096:
        return None
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(_signature(secret, payload), signature):
        return None
    try:
        return _unb64(payload).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def decode_session(
    cookie: str | None, users: Users, *, now: float, sso_tenant: str | None = None
) -> Session | None:
    """The session a cookie carries, or None if it is missing, forged, expired or outdated.

    A session is outdated when its user was removed, or their password or role changed. A
    session of an Entra ID sign-in is valid while single sign-on is on for the same tenant.
    """
    if not cookie or "." not in cookie or len(cookie) > 4096:
        return None
    payload, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(_signature(users.session_secret, payload), signature):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(
            user=str(data["u"]),
            role=Role(data["r"]),
            csrf=str(data["c"]),
            expires=int(data["e"]),
            fingerprint=str(data["f"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires <= now:
        return None
    sso = sso_user(session.user, session.role, sso_tenant) if sso_tenant is not None else None
    if sso is not None and session.fingerprint == sso.fingerprint:
        return session
    user = users.users.get(session.user)
    if user is None or user.fingerprint != session.fingerprint or user.role is not session.role:
        return None
    if session.expires <= now:
        return None
    return session


def csrf_ok(session: Session, token: str | None) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())


class SignInThrottle:
    """Refuses sign-in for a while after too many failures from one address for one user.

    After `limit` failed attempts within `window_seconds` for the same (address, user), further
    attempts are refused, without checking the password, until the oldest failure leaves the
    window. A success clears the count. Kept in memory (per process), at most `max_keys` keys.
    """

    def __init__(
        self, *, limit: int = 10, window_seconds: float = 900.0, max_keys: int = 10_000
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if t > now - self.window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def wait_seconds(self, address: str, user: str, *, now: float) -> float:
        """0 when an attempt may be checked; else how long until one may."""
        recent = self._recent((address, user), now)
        if len(recent) < self.limit:
            return 0.0
        return max(1.0, recent[-self.limit] + self.window - now)

    def failed(self, address: str, user: str, *, now: float) -> None:
        """Count a failed attempt."""
        if len(self._failures) >= self.max_keys:
            for key in list(self._failures):
                self._recent(key, now)
            if len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault((address, user), []).append(now)

    def succeeded(self, address: str, user: str) -> None:
        """Forget the failures of a user who signed in."""
        self._failures.pop((address, user), None)
