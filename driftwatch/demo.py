"""`driftwatch demo`: the README's main job (see driftwatch/scenario.py for the steps)."""

from __future__ import annotations

from driftwatch.scenario import run_demo

__all__ = ["run_demo"]
