"""SECURITY.md states the limits muxsim/limits.py enforces (one definition, one page)."""

from __future__ import annotations

from muxsim import limits
from tests.hardening import REPO


def test_the_limits_table_matches_the_code():
    text = (REPO / "SECURITY.md").read_text()
    shown = {
        "MAX_REQUESTS": f"{limits.MAX_REQUESTS:,}", "MAX_SEARCH": f"{limits.MAX_SEARCH:,}",
        "MAX_TRIALS": f"{limits.MAX_TRIALS:,}", "MAX_WORKERS": str(limits.MAX_WORKERS),
        "MAX_LLMS": str(limits.MAX_LLMS), "MAX_NODES": f"{limits.MAX_NODES}, {limits.MAX_GPUS_PER_NODE}",
        "MAX_TOKENS": f"{limits.MAX_TOKENS:,}", "MAX_BATCH": f"{limits.MAX_BATCH:,}",
        "MAX_RATE": f"{limits.MAX_RATE:,.0f}", "MAX_TIME_S": f"{limits.MAX_TIME_S:.0e}".replace("e+0", "e"),
        "MIN_SM_SHARE": f"{limits.MIN_SM_SHARE:g}", "MAX_OVERLOAD": f"{limits.MAX_OVERLOAD:g}",
        "MAX_SAMPLES": f"{limits.MAX_SAMPLES:,}",
        "MAX_WINDOWS": f"{limits.MAX_WINDOWS:,}", "MAX_PROFILE_ROWS": f"{limits.MAX_PROFILE_ROWS:,}",
        "MAX_VIDUR_MODELS": str(limits.MAX_VIDUR_MODELS), "MAX_PARAM": f"{limits.MAX_PARAM:.0e}".replace("e+0", "e"),
        "MAX_CAPACITY_GPUS": str(limits.MAX_CAPACITY_GPUS), "MAX_CAPACITY_REQUESTS": f"{limits.MAX_CAPACITY_REQUESTS:,}",
        "MAX_SCORE_BUDGET": str(limits.MAX_SCORE_BUDGET), "MAX_MESSAGE_BYTES": f"{limits.MAX_MESSAGE_BYTES:,}",
    }
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `")}
    for name, value in shown.items():
        assert f"| {value} |" in rows[name], (name, value, rows[name])
    assert f"{limits.MAX_JSON_BYTES >> 20} MiB" in text and f"{limits.MAX_TABLE_BYTES >> 20} MiB" in text
    assert f"at most {limits.MAX_VIDUR_ENTRIES} entries a folder" in text
