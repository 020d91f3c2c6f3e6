"""Errors of the store, sorted by what the caller must do.

```
StoreError                  root: the message says what happened and what to do
├── StoreUnavailableError   the database cannot be reached or opened (a bad URL, a server that
│                           is down, a file that cannot be created); retrying later may help
├── SchemaVersionError      the database's schema is not the one this cosell expects: behind
│                           (run `cosell db upgrade`) or ahead (a newer cosell wrote it)
├── LinkNotFoundError       a verb named a link that does not exist (in this tenant)
└── LinkConflictError       a create or update would tie a referral or a record to a second link
```

Invariant: no message contains a database password; URLs are shown with the password masked.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error of the store; the message tells a human what to do."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened."""


class SchemaVersionError(StoreError):
    """The database's schema revision is not the one this cosell needs."""


class LinkNotFoundError(StoreError):
    """No link with the given id exists in this tenant."""


class LinkConflictError(StoreError):
    """The referral or the record is already linked to something else."""
