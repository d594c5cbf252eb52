"""The types ``help()`` and ``inspect.signature`` show, taken from the stubs.

The methods are built at import (``_ops.install``) from operations whose arguments are
checked at run time, so their own annotations say little. The stubs (``__init__.pyi``) are
where the types are written, for type checkers; this module gives each method of the
public classes the annotations of its stub, with the stubs' aliases (``_Time``...) spelled
out, so ``help(MarketDB.read_data)`` and a type checker read the same types.
"""

from __future__ import annotations

import ast
import copy
import inspect
from pathlib import Path
from typing import Any


class _Shown(str):
    """An annotation as the stubs write it; shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _stubs() -> tuple[dict[str, ast.expr], dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]]]:
    tree = ast.parse(Path(__file__).with_name("__init__.pyi").read_text(encoding="utf-8"))
    aliases: dict[str, ast.expr] = {}
    classes: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            aliases[node.targets[0].id] = node.value
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {
                f.name: f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return aliases, classes


class _Expand(ast.NodeTransformer):
    def __init__(self, aliases: dict[str, ast.expr]) -> None:
        self.aliases = aliases

    def visit_Name(self, node: ast.Name) -> Any:
        return copy.deepcopy(self.aliases[node.id]) if node.id in self.aliases else node


def _shown(expr: ast.expr | None, aliases: dict[str, ast.expr]) -> Any:
    if expr is None:
        return inspect.Parameter.empty
    return _Shown(ast.unparse(_Expand(aliases).visit(copy.deepcopy(expr))))


def apply(*classes: type) -> None:
    """Gives every method of ``classes`` that has a stub its stub's annotations."""
    aliases, stubs = _stubs()
    for cls in classes:
        for name, stub in stubs.get(cls.__name__, {}).items():
            member = cls.__dict__.get(name)
            if not inspect.isfunction(member):
                continue
            sig = inspect.signature(member)
            arguments = stub.args.posonlyargs + stub.args.args + stub.args.kwonlyargs
            annotated = {a.arg: a.annotation for a in arguments}
            parameters = [
                p.replace(annotation=_shown(annotated[p.name], aliases)) if annotated.get(p.name) is not None else p
                for p in sig.parameters.values()
            ]
            member.__signature__ = sig.replace(  # type: ignore[attr-defined]
                parameters=parameters, return_annotation=_shown(stub.returns, aliases)
            )
