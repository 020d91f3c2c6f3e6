"""JSON Patch (RFC 6902) as the Referrals API supports it: `add` and `replace` only (spec §2.4).

Paths are JSON Pointers (RFC 6901, `~1` for `/`, `~0` for `~`). `add` sets an object member or
inserts into an array (`-` appends, as in `{"op": "add", "path": "/team/-", ...}`); `replace`
sets an existing array element or an object member. Replacing an object member that the stored
referral does not have yet is treated like `add` [I]: the API's own examples replace
`/details/notes` on referrals that may never have had notes, and real clients rely on that.
Every other operation, a missing parent, an index out of range or a write to the whole document
is a `PatchError` naming the offending path. Operations apply in order to a document the caller
owns (mutated in place); the caller decides what to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED_OPS = ("add", "replace")


class PatchError(Exception):
    """A JSON Patch document or operation that cannot be applied; `target` is its path."""

    def __init__(self, message: str, target: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target


@dataclass(frozen=True)
class PatchOperation:
    """One validated `add` or `replace` operation."""

    op: str
    path: str
    tokens: tuple[str, ...]
    value: Any


def parse_pointer(path: str) -> tuple[str, ...]:
    """Split a JSON Pointer into unescaped reference tokens.

    Raises:
        PatchError: the pointer does not start with `/` or is the whole document.
    """
    if not path.startswith("/"):
        raise PatchError(f"path {path!r} is not a JSON Pointer; it must start with '/'", path)
    if path == "/":
        raise PatchError("the path '/' names a member with an empty name; name a field", path)
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/"))


def parse_patch(body: Any) -> list[PatchOperation]:
    """Validate a request body as a JSON Patch document of `add`/`replace` operations.

    Raises:
        PatchError: the body is not a non-empty array of operations, or an operation is
            malformed or unsupported.
    """
    if not isinstance(body, list) or not body:
        raise PatchError(
            "the body must be a JSON Patch document: a non-empty JSON array of operations "
            'such as [{"op": "replace", "path": "/details/notes", "value": "..."}]',
            None,
        )
    operations = []
    for index, raw in enumerate(body):
        if not isinstance(raw, dict):
            raise PatchError(f"operation {index} is not a JSON object", None)
        op, path = raw.get("op"), raw.get("path")
        if not isinstance(path, str):
            raise PatchError(f"operation {index} has no 'path' string", None)
        if op not in SUPPORTED_OPS:
            raise PatchError(
                f"operation {index} has op {op!r}; the Referrals API supports only "
                f"{' and '.join(SUPPORTED_OPS)}",
                path,
            )
        if "value" not in raw:
            raise PatchError(f"operation {index} ({op} {path}) has no 'value'", path)
        operations.append(PatchOperation(str(op), path, parse_pointer(path), raw["value"]))
    return operations


def _array_index(step: str, length: int, path: str, *, allow_end: bool) -> int:
    if step == "-" and allow_end:
        return length
    if not step.isdigit() or (len(step) > 1 and step.startswith("0")):
        raise PatchError(f"{step!r} in path {path!r} is not an array index", path)
    index = int(step)
    limit = length if allow_end else length - 1
    if index > limit:
        raise PatchError(
            f"index {index} in path {path!r} is out of range (the array has {length} items)", path
        )
    return index


def get_pointer(document: Any, tokens: tuple[str, ...]) -> Any:
    """The value at `tokens` in `document`, or None when any step is missing."""
    node = document
    for token in tokens:
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def apply_operation(document: dict[str, Any], operation: PatchOperation) -> None:
    """Apply one operation to `document` in place.

    Raises:
        PatchError: the parent does not exist or the index is out of range.
    """
    path = operation.path
    parent: Any = document
    walked = ""
    for token in operation.tokens[:-1]:
        walked += "/" + token.replace("~", "~0").replace("/", "~1")
        if isinstance(parent, dict):
            if token not in parent or parent[token] is None:
                raise PatchError(
                    f"cannot {operation.op} {path}: {walked} does not exist; "
                    f"add {walked} as a whole object instead",
                    path,
                )
            parent = parent[token]
        elif isinstance(parent, list):
            parent = parent[_array_index(token, len(parent), path, allow_end=False)]
        else:
            raise PatchError(f"cannot {operation.op} {path}: {walked} is not an object", path)
    last = operation.tokens[-1]
    if isinstance(parent, dict):
        parent[last] = operation.value
    elif isinstance(parent, list):
        if operation.op == "add":
            parent.insert(_array_index(last, len(parent), path, allow_end=True), operation.value)
        else:
            parent[_array_index(last, len(parent), path, allow_end=False)] = operation.value
    else:
        raise PatchError(f"cannot {operation.op} {path}: its parent is not an object", path)
