"""Reading a mapping file, with every problem reported at its line and column.

PyYAML's composer gives a node tree whose nodes carry their start positions. The loader builds
plain data from that tree itself, recording the position of every key and value under its
path (`("fields", 3, "transform")`), and reports duplicate keys (which `yaml.safe_load` would
silently collapse). Pydantic then validates the data; each of its errors carries a `loc`
path, which is looked up in the recorded positions (the nearest enclosing place when the
path goes through a union tag or names a missing key). An unknown key is reported at the key
itself, with the keys that are allowed there. The result is a `MappingError` listing every
problem as `file:line:column: message`, or a `Mapping` that remembers the places of its parts
for `check_mapping`.

Mapping keys are read as text as written (`None:` and `Yes:` are the strings "None" and
"Yes", not YAML's null and true); values follow YAML's usual rules, so a Salesforce value like
`Yes` must be quoted.
"""

from __future__ import annotations

import importlib.resources
import importlib.resources.abc
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cosell.mapping.model import Loc, Mapping, MappingError, Problem

DEFAULT_MAPPING = "default-mapping.yaml"
"""The mapping shipped with cosell (package data of `cosell.mapping`)."""


class _Document:
    """Plain data built from a YAML node tree, and the position of every part of it."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.values: dict[Loc, str] = {}
        self.keys: dict[Loc, str] = {}
        self.problems: list[Problem] = []
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self.data = None if node is None else self._build(loader, node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = self._mark(mark) if mark is not None else source
            what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            self.problems.append(Problem(where, f"not valid YAML: {what}"))
            self.data = None
        except yaml.YAMLError as exc:
            self.problems.append(Problem(source, f"not valid YAML: {exc}"))
            self.data = None
        finally:
            loader.dispose()

    def _mark(self, mark: yaml.Mark) -> str:
        return f"{self.source}:{mark.line + 1}:{mark.column + 1}"

    def _build(self, loader: yaml.SafeLoader, node: yaml.Node, loc: Loc) -> Any:
        self.values.setdefault(loc, self._mark(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            built: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        Problem(self._mark(key_node.start_mark), "a key must be plain text")
                    )
                    continue
                key = str(key_node.value)
                if key in built:
                    self.problems.append(
                        Problem(
                            self._mark(key_node.start_mark),
                            f"duplicate key {key!r}: it is already given at "
                            f"{self.keys[(*loc, key)].rpartition(self.source + ':')[2]}; "
                            "give each key once",
                        )
                    )
                    continue
                self.keys[(*loc, key)] = self._mark(key_node.start_mark)
                built[key] = self._build(loader, value_node, (*loc, key))
            return built
        if isinstance(node, yaml.SequenceNode):
            return [self._build(loader, item, (*loc, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def place(self, loc: Loc, *, at_key: bool = False) -> str:
        """The position of `loc`, or of the nearest enclosing part that has one."""
        path: Loc = ()
        for item in loc:
            candidate = (*path, item)
            if candidate in self.values or candidate in self.keys:
                path = candidate
        if at_key and path in self.keys:
            return self.keys[path]
        return self.values.get(path) or self.keys.get(path) or self.source


def _label(loc: Loc) -> str:
    text = ""
    for item in loc:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else item)
    return text


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose member `loc[-1]` is (to list the keys allowed there)."""
    current: Any = Mapping
    for item in loc[:-1]:
        current = _step(current, item)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _step(current: Any, item: str | int) -> Any:
    origin = get_origin(current)
    if origin is list or origin is tuple:
        return get_args(current)[0] if isinstance(item, int) else None
    if origin is Union or origin is types.UnionType:
        for member in get_args(current):
            fields = getattr(member, "model_fields", {})
            tag = fields.get("type")
            annotation = tag.annotation if tag is not None else None
            if get_origin(annotation) is Literal and item in get_args(annotation):
                return member
        return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        info = current.model_fields.get(str(item))
        if info is None:
            return None
        annotation = info.annotation
        while get_origin(annotation) is not None and get_origin(annotation) not in (
            list,
            tuple,
            Union,
            types.UnionType,
        ):
            annotation = get_args(annotation)[0]
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                return members[0]
        return annotation
    return None


def _problem(document: _Document, error: ErrorDetails) -> list[Problem]:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "mapping_consistency":
        return [
            Problem(document.place((*loc, *inner)), f"{_label(inner)}: {message}")
            for inner, message in ctx["problems"]
        ]
    label = _label(loc) or "the mapping"
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = f" (allowed here: {', '.join(model.model_fields)})" if model else ""
        return [Problem(document.place(loc, at_key=True), f"{label}: unknown key{allowed}")]
    if kind == "missing":
        return [Problem(document.place(loc), f"{label}: required, but missing")]
    if kind == "union_tag_invalid":
        return [
            Problem(
                document.place(loc),
                f"{label}: unknown transform {ctx.get('tag')!r}; use one of: "
                f"{ctx.get('expected_tags')}",
            )
        ]
    message = error["msg"].removeprefix("Value error, ")
    return [Problem(document.place(loc), f"{label}: {message}")]


def parse_mapping(text: str, source: str = "<mapping>") -> Mapping:
    """Read and validate a mapping from YAML text.

    Args:
        text: the YAML document.
        source: the file name to put in problem places.

    Returns:
        The mapping, which knows the places of its parts (`Mapping.place`).

    Raises:
        MappingError: with every problem found, each at its `file:line:column`.
    """
    document = _Document(text, source)
    problems = list(document.problems)
    if document.data is not None and not isinstance(document.data, dict):
        problems.append(
            Problem(document.place(()), "a mapping file is a YAML object with stages and fields")
        )
    if not isinstance(document.data, dict):
        raise MappingError(problems or [Problem(source, "the mapping file is empty")])
    try:
        mapping = Mapping.model_validate(document.data)
    except ValidationError as exc:
        problems += [p for error in exc.errors() for p in _problem(document, error)]
        raise MappingError(problems) from None
    if problems:  # duplicate keys: the data validated, but it is not what the file says
        raise MappingError(problems)
    mapping._source = source
    mapping._places = {**document.keys, **document.values}
    return mapping


def default_mapping_text() -> str:
    """The YAML of the mapping shipped with cosell."""
    return _default_resource().read_text("utf-8")


def default_mapping_path() -> str:
    """Where the shipped mapping is, for problem places (a file path when installed as files)."""
    resource = _default_resource()
    return str(resource) if isinstance(resource, Path) else f"<cosell>/{DEFAULT_MAPPING}"


def _default_resource() -> importlib.resources.abc.Traversable:
    return importlib.resources.files("cosell.mapping").joinpath(DEFAULT_MAPPING)


def load_mapping(path: Path | None = None) -> Mapping:
    """Load a mapping file, or the default mapping shipped with cosell.

    Args:
        path: the YAML file; None for the default mapping.

    Returns:
        The validated mapping.

    Raises:
        MappingError: the file cannot be read or has problems (each at file:line:column).
    """
    if path is None:
        return parse_mapping(default_mapping_text(), default_mapping_path())
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise MappingError(
            [Problem(str(path), f"cannot read the mapping file: {exc.strerror or exc}")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise MappingError(
            [Problem(str(path), f"the mapping file is not UTF-8 text ({exc.reason})")]
        ) from exc
    return parse_mapping(text, str(path))
