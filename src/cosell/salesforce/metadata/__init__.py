"""cosell's Salesforce metadata: our custom fields, objects and permission set, deployable with the sf CLI.

The files next to this module are a Salesforce DX project in source format
(`sfdx-project.json`, `force-app/main/default/objects/...`, `permissionsets/...`). They are the
single source of truth for cosell's data model in Salesforce (DESIGN.md, "Salesforce data model"):

- an admin writes them out with `cosell salesforce metadata --out DIR` (`write_project`) and
  deploys them with the commands in `DEPLOY_INSTRUCTIONS`, to a sandbox org first, then production;
- the Salesforce sandbox reads the very same files as package data to build its describe, so the
  emulated org and a real org set up from this metadata cannot drift.

This module stays free of imports beyond the standard library: the sandbox reads the files through
`importlib.resources`, which imports this package.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "CHANGE_EVENTS_PERMISSION_SET",
    "DEPLOY_INSTRUCTIONS",
    "PERMISSION_SET",
    "SELLER_PERMISSION_SET",
    "MetadataWriteError",
    "metadata_root",
    "project_files",
    "write_project",
]

PERMISSION_SET = "Cosell_Integration"  # the integration user's permission set
SELLER_PERMISSION_SET = "Cosell_Seller"  # the permission set for sellers
# Optional: View All Records for the integration user with `changes = "cdc"` (change events).
CHANGE_EVENTS_PERMISSION_SET = "Cosell_Change_Events"

# Quoted verbatim by README.md in this folder (a test checks it); printed by the CLI.
DEPLOY_INSTRUCTIONS = """\
Deploy with the Salesforce CLI (https://developer.salesforce.com/tools/salesforcecli),
from the folder cosell wrote:

1. A sandbox org first:

   sf org login web --instance-url https://test.salesforce.com --alias cosell-sandbox
   sf project deploy start --source-dir force-app --target-org cosell-sandbox
   sf org assign permset --name Cosell_Integration --target-org cosell-sandbox --on-behalf-of <integration user>

2. Then production, once the sandbox works:

   sf org login web --instance-url https://login.salesforce.com --alias cosell-production
   sf project deploy start --source-dir force-app --target-org cosell-production
   sf org assign permset --name Cosell_Integration --target-org cosell-production --on-behalf-of <integration user>

Replace <integration user> with the username cosell signs in as (for example
cosell@yourcompany.com). Then, in each org:

- give sellers the Cosell_Seller permission set (sf org assign permset --name Cosell_Seller
  --target-org <alias> --on-behalf-of <seller> ...): new fields are hidden from everyone until
  granted; it shows sellers every cosell field but lets them edit only the ones a seller sets
  (do not grant edit on the others in profiles: cosell writes them);
- add the Microsoft Solutions related list and the new fields to the Opportunity and Lead page
  layouts;
- only with [salesforce] changes = "cdc": also give the integration user the
  Cosell_Change_Events permission set (sf org assign permset --name Cosell_Change_Events
  --target-org <alias> --on-behalf-of <integration user>): Salesforce delivers an object's
  change events only to a user with View All Records on it.
"""

# Package contents that are not part of the Salesforce project.
_SKIPPED_SUFFIXES = (".py", ".pyc", ".pyi", ".typed")
_SKIPPED_NAMES = frozenset({"__pycache__"})


class MetadataWriteError(Exception):
    """The metadata project cannot be written where asked; the message says what to do."""


def metadata_root() -> Traversable:
    """The root of the packaged project (the folder holding `sfdx-project.json`)."""
    return importlib.resources.files(__name__)


def project_files() -> list[tuple[str, Traversable]]:
    """Every file of the project as (POSIX path relative to the root, file), sorted by path."""
    found: list[tuple[str, Traversable]] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.name in _SKIPPED_NAMES or child.name.endswith(_SKIPPED_SUFFIXES):
                continue
            relative = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, relative + "/")
            else:
                found.append((relative, child))

    walk(metadata_root(), "")
    return sorted(found, key=lambda item: item[0])


def write_project(out_dir: Path, *, force: bool = False) -> list[Path]:
    """Write the deployable Salesforce DX project into `out_dir`.

    Args:
        out_dir: Where to write; created if missing.
        force: Write into a non-empty directory, overwriting files of the same names.

    Returns:
        The files written, sorted.

    Raises:
        MetadataWriteError: `out_dir` is a file, is a non-empty directory and `force` is off,
            or cannot be written to.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise MetadataWriteError(f"{out_dir} is a file; pass a directory to write the project to")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise MetadataWriteError(
            f"{out_dir} is not empty; choose an empty or new directory, or pass --force to "
            "overwrite the project files in it"
        )
    written: list[Path] = []
    for relative, source in project_files():
        target = out_dir.joinpath(*relative.split("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        except OSError as exc:
            raise MetadataWriteError(
                f"cannot write {target}: {exc.strerror or exc}; choose a directory you can write to"
            ) from exc
        written.append(target)
    return written
