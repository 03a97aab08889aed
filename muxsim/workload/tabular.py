"""Reading request tables (CSV or JSON Lines): :func:`muxsim.io.read_table`."""

from __future__ import annotations

from muxsim.io import read_table

__all__ = ["read_table"]
