"""`driftwatch up` / `down`: the whole stack on this machine as supervised processes."""

from __future__ import annotations


def run_up(*, with_mlflow_server: bool = False) -> int:
    raise NotImplementedError("driftwatch up arrives with the services")


def run_down() -> int:
    raise NotImplementedError("driftwatch down arrives with the services")
