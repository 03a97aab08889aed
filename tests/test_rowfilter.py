"""The ``calibrate --train`` filter language: it selects exactly the rows a plain Python
evaluation of the same comparisons selects, refuses everything else with an InputError,
and can call nothing (attacks that worked through DataFrame.eval write no file)."""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muxsim.errors import InputError
from muxsim.rowfilter import RowFilter, select_rows
from tests.hardening import PROFILE, assert_refused, bounded, cli

COLUMNS = ("model", "phase", "tp", "sm_pct", "batch", "latency_ms")
DF = pd.DataFrame({
    "model": ["a", "b", "a", "c", "NA", "01"] * 5,
    "phase": ["prefill", "decode"] * 15,
    "tp": [1, 2, 4] * 10,
    "sm_pct": [30, 50, 100, 70, 100] * 6,
    "batch": list(range(1, 31)),
    "latency_ms": np.linspace(0.5, 20.0, 30),
})
TEXT = {"model": ["a", "b", "c", "NA", "01", "zz"], "phase": ["prefill", "decode", "other"]}
NUMS = {"tp": [1, 2, 3, 4], "sm_pct": [30, 50, 70, 100, 0], "batch": [1, 5, 10, 30, -1], "latency_ms": [1.0, 7.5, 20.0]}
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@st.composite
def comparisons(draw):
    col = draw(st.sampled_from(COLUMNS))
    if col in TEXT:
        if draw(st.booleans()):
            vals = draw(st.lists(st.sampled_from(TEXT[col]), min_size=1, max_size=3))
            neg = draw(st.booleans())
            text = f"{col} {'not in' if neg else 'in'} [{', '.join(repr(v) for v in vals)}]"
            return text, (lambda row: (row[col] in vals) != neg)
        op = draw(st.sampled_from(["==", "!="]))
        v = draw(st.sampled_from(TEXT[col]))
        quote = draw(st.sampled_from(["'", '"']))
        return f"{col} {op} {quote}{v}{quote}", (lambda row: OPS[op](row[col], v))
    op = draw(st.sampled_from(sorted(OPS)))
    v = draw(st.sampled_from(NUMS[col]))
    if draw(st.booleans()):
        return f"{col} {op} {v}", (lambda row: OPS[op](row[col], v))
    return f"{v} {op} {col}", (lambda row: OPS[op](v, row[col]))


@st.composite
def filters(draw, depth=0):
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(comparisons())
    kind = draw(st.sampled_from(["and", "or", "not", "paren"]))
    a_text, a_fn = draw(filters(depth + 1))
    if kind == "not":
        return f"not ({a_text})", (lambda row: not a_fn(row))
    if kind == "paren":
        return f"({a_text})", a_fn
    b_text, b_fn = draw(filters(depth + 1))
    if kind == "and":
        return f"({a_text}) and ({b_text})", (lambda row: a_fn(row) and b_fn(row))
    return f"({a_text}) or ({b_text})", (lambda row: a_fn(row) or b_fn(row))


@settings(max_examples=200, deadline=None)
@given(filters())
def test_a_filter_selects_what_python_selects(f):
    text, fn = f
    want = np.array([bool(fn(row)) for row in DF.to_dict("records")])
    got = select_rows(DF, text, COLUMNS)
    assert got.dtype == bool and (got == want).all(), text


def test_chained_comparisons_and_lists():
    assert select_rows(DF, "2 <= tp <= 4 and batch in [1, 2, 3]", COLUMNS).tolist() == \
        ((DF.tp >= 2) & (DF.tp <= 4) & DF.batch.isin([1, 2, 3])).tolist()
    assert select_rows(DF, "model == 'NA' or model == '01'", COLUMNS).sum() == 10  # text stays text
    assert select_rows(DF, "tp != -1", COLUMNS).all()


@pytest.mark.parametrize(("text", "message"), [
    ("x = tp + 1", "cannot read the filter"),
    ("tp + 1 > 2", "arithmetic is not allowed"),
    ("__import__('os').system('touch PWNED') == 0", "a call is not allowed"),
    ("tp.__class__ == 1", "an attribute is not allowed"),
    ("@__builtins__['open']('PWNED', 'w')", "cannot read the filter"),
    ("model[0] == 'a'", "a subscript is not allowed"),
    ("(lambda: 1)() == 1", "not allowed"),
    ("[x for x in tp] == 1", "not allowed"),
    ("zz == 1", "unknown column 'zz'"),
    ("tp", "'tp' alone is not a condition"),
    ("tp == 'a'", "holds numbers"),
    ("model > 'a'", "compares numbers"),
    ("model == 1", "holds text"),
    ("tp in 1", "takes a list"),
    ("1 == 1", "must involve a column"),
    ("tp == 1e999", "must be finite"),
    ("tp == " + "9" * 400, "too large"),
    ("tp is 1", "not allowed"),
    ("", "empty filter"),
    ("(" * 300 + "tp == 1" + ")" * 300, "cannot read the filter"),
    ("tp == 1 and " * 400 + "tp == 1", "at most 2000 characters"),
    ("tp == True", "not a value"),
    ("tp == None", "not a value"),
    ("not tp", "alone is not a condition"),
    ("tp == 1 if tp else 0", "not allowed"),
    ("{'a': 1} == tp", "not allowed"),
])
def test_anything_else_is_refused_and_nothing_runs(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        select_rows(DF, text, COLUMNS, "train")
    assert not Path("PWNED").exists()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_is_an_input_error(text):
    try:
        RowFilter(text, COLUMNS).mask(DF)
    except InputError:
        pass


def test_calibrate_train_runs_the_filter_and_refuses_code(tmp_path):
    (tmp_path / "p.csv").write_bytes(PROFILE.read_bytes())
    (tmp_path / "p.models.json").write_bytes(PROFILE.with_suffix(".models.json").read_bytes())
    r = cli("calibrate", "p.csv", "--out", "o.json", "--train", "sm_pct >= 50 and phase in ['decode', 'prefill']",
            cwd=tmp_path)
    assert r.code == 0, r.err
    for attack in ("@__builtins__.get('open')('PWNED', 'w').write('x') > 0", "x = tp + 1"):
        assert_refused(cli("calibrate", "p.csv", "--out", "o2.json", "--train", attack, cwd=tmp_path), "train")
    attack = "__import__('os').system('touch PWNED') == 0"  # the real command, memory-limited and timed
    assert_refused(bounded("calibrate", "p.csv", "--out", "o2.json", "--train", attack, cwd=tmp_path), "a call")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "o2.json").exists()
