"""Row filters: a small language for choosing rows of a table, which cannot call anything.

``calibrate --train`` takes a filter such as::

    model == 'llama-7b' and tp == 1 and sm_pct >= 50
    phase in ['prefill', 'decode'] and not (batch > 64 or seq_len < 16)

A filter is comparisons joined by ``and``, ``or``, ``not`` and parentheses. A
comparison sets a column against a value, a list of values (``in``, ``not in``) or
another column, with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; comparisons may chain
(``1 <= tp <= 4``). Values are string literals (``'llama-7b'`` or ``"llama-7b"``) and
numbers (``-1``, ``2.5``, ``1e3``). Column names come from a fixed set the caller gives;
nothing else is a name. There are no calls, attributes, subscripts, arithmetic,
assignments or lambdas.

The text is parsed with Python's own parser (``ast.parse(..., mode="eval")``) and the
tree is checked against a whitelist of node types before anything is evaluated; the
evaluation is ours, over pandas columns, into a boolean mask. No ``eval``, no
``DataFrame.eval``/``query``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from muxsim.errors import InputError

MAX_LENGTH = 2000  # characters of one filter

_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.In: "in", ast.NotIn: "not in"}


class _Bad(Exception):
    """A filter that is not in the language (turned into an InputError)."""


def _value(node: ast.AST) -> Any:
    """A literal: a string or a finite number (a leading minus allowed)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _value(node.operand)
        if isinstance(v, str):
            raise _Bad("a sign only goes before a number")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None or not isinstance(v, str | int | float):
            raise _Bad(f"{v!r} is not a value (use a string in quotes or a number)")
        if isinstance(v, str):
            return v
        try:
            x = float(v)
        except OverflowError:
            raise _Bad("a number is too large") from None
        if not math.isfinite(x):
            raise _Bad("a number must be finite")
        return v
    raise _Bad(_describe(node))


def _describe(node: ast.AST) -> str:
    kinds = {ast.Call: "a call", ast.Attribute: "an attribute", ast.Subscript: "a subscript",
             ast.BinOp: "arithmetic", ast.Lambda: "a lambda", ast.NamedExpr: "an assignment",
             ast.IfExp: "an if-expression", ast.Dict: "a dict", ast.Set: "a set"}
    for kind, what in kinds.items():
        if isinstance(node, kind):
            return f"{what} is not allowed (a filter only compares columns with values)"
    return f"{type(node).__name__.lower()} is not allowed (a filter only compares columns with values)"


class RowFilter:
    """A parsed filter over a fixed set of columns; ``mask(df)`` evaluates it."""

    def __init__(self, text: str, columns: Iterable[str], what: str = "filter") -> None:
        self.text = text
        self.columns = tuple(columns)
        self.what = what
        if not isinstance(text, str):
            raise InputError(f"{what}: expected a filter string, got {type(text).__name__}")
        if not text.strip():
            raise InputError(f"{what}: empty filter")
        if len(text) > MAX_LENGTH:
            raise InputError(f"{what}: a filter may have at most {MAX_LENGTH} characters, got {len(text)}")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as e:
            raise InputError(f"{what}: cannot read the filter ({e.msg}; write comparisons joined by "
                             "and/or/not, e.g. \"model == 'llama-7b' and tp == 1\")") from None
        except (ValueError, RecursionError, MemoryError):
            raise InputError(f"{what}: cannot read the filter (nested too deeply or not text)") from None
        try:
            self._check(tree.body, 0)
        except _Bad as e:
            raise InputError(f"{what}: {e}") from None
        except RecursionError:
            raise InputError(f"{what}: the filter is nested too deeply") from None
        self.tree = tree.body

    # ---- the whitelist --------------------------------------------------------------------
    def _check(self, node: ast.AST, depth: int) -> None:
        if depth > 100:
            raise _Bad("the filter is nested too deeply")
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v, depth + 1)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand, depth + 1)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:]):
                sym = _COMPARE.get(type(op))
                if sym is None:
                    raise _Bad(f"the operator {type(op).__name__} is not allowed (use ==, !=, <, <=, >, >=, "
                               "in, not in)")
                if sym in ("in", "not in"):
                    self._column(left)
                    if not isinstance(right, ast.List | ast.Tuple):
                        raise _Bad(f"'{sym}' takes a list of values, e.g. tp in [1, 2]")
                    for e in right.elts:
                        _value(e)
                else:
                    cols = [self._is_column(x) for x in (left, right)]
                    for x, is_col in zip((left, right), cols):
                        if not is_col:
                            _value(x)
                    if not any(cols):
                        raise _Bad("a comparison must involve a column "
                                   f"(columns: {', '.join(self.columns)})")
        elif isinstance(node, ast.Name):
            raise _Bad(f"{node.id!r} alone is not a condition; compare it with a value, e.g. {node.id} == ...")
        else:
            raise _Bad(_describe(node))

    def _is_column(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            self._column(node)
            return True
        return False

    def _column(self, node: ast.AST) -> str:
        if not isinstance(node, ast.Name):
            raise _Bad("the left of 'in' must be a column")
        if node.id not in self.columns:
            raise _Bad(f"unknown column {node.id!r} (columns: {', '.join(self.columns)})")
        return node.id

    # ---- evaluation -----------------------------------------------------------------------
    def mask(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of ``df`` the filter selects."""
        try:
            out = self._eval(self.tree, df)
        except _Bad as e:
            raise InputError(f"{self.what}: {e}") from None
        return np.broadcast_to(np.asarray(out, dtype=bool), (len(df),)).copy()

    def _operand(self, node: ast.AST, df: pd.DataFrame) -> tuple[Any, bool]:
        if isinstance(node, ast.Name):
            if node.id not in df.columns:
                raise _Bad(f"column {node.id!r} is not in the table")
            return df[node.id], True
        return _value(node), False

    def _eval(self, node: ast.AST, df: pd.DataFrame) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            parts = [self._eval(v, df) for v in node.values]
            fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = parts[0]
            for p in parts[1:]:
                out = fn(out, p)
            return out
        if isinstance(node, ast.UnaryOp):
            return np.logical_not(self._eval(node.operand, df))
        assert isinstance(node, ast.Compare)
        out: Any = True
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            sym = _COMPARE[type(op)]
            lv, lcol = self._operand(left, df)
            if sym in ("in", "not in"):
                assert isinstance(right, ast.List | ast.Tuple)
                values = [_value(e) for e in right.elts]
                for v in values:
                    _check_kind(lv, v, left)
                hit = lv.isin(values).to_numpy(dtype=bool)
                out = np.logical_and(out, hit if sym == "in" else ~hit)
                continue
            rv, rcol = self._operand(right, df)
            if lcol and rcol:
                if _is_text(lv) != _is_text(rv):
                    raise _Bad(f"cannot compare text with numbers ({ast.unparse(left)} {sym} {ast.unparse(right)})")
            elif lcol:
                _check_kind(lv, rv, left)
            else:
                _check_kind(rv, lv, right)
            if sym not in ("==", "!=") and (_is_text(lv) if lcol else _is_text(rv)):
                raise _Bad(f"'{sym}' compares numbers; text columns take == , != or in")
            res = _apply(sym, lv, rv)
            out = np.logical_and(out, np.asarray(res, dtype=bool))
        return out


def _is_text(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col)


def _check_kind(col: pd.Series, value: Any, node: ast.AST) -> None:
    name = ast.unparse(node)
    if _is_text(col) and not isinstance(value, str):
        raise _Bad(f"column {name!r} holds text; compare it with a string in quotes, got {value!r}")
    if not _is_text(col) and isinstance(value, str):
        raise _Bad(f"column {name!r} holds numbers; compare it with a number, got {value!r}")


def _apply(sym: str, a: Any, b: Any) -> Any:
    if isinstance(a, int) and not isinstance(a, bool):
        a = float(a)
    if isinstance(b, int) and not isinstance(b, bool):
        b = float(b)
    if sym == "==":
        return a == b
    if sym == "!=":
        return a != b
    if sym == "<":
        return a < b
    if sym == "<=":
        return a <= b
    if sym == ">":
        return a > b
    return a >= b


def select_rows(df: pd.DataFrame, text: str, columns: Iterable[str], what: str = "filter") -> np.ndarray:
    """The boolean mask of ``df``'s rows that the filter ``text`` selects."""
    return RowFilter(text, columns, what).mask(df)
