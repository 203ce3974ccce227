"""`driftwatch demo`: the main job. (Foundation stage: train, register, promote, list versions.)"""

from __future__ import annotations

from driftwatch.cli import cmd_versions


def run_demo(*, keep_running: bool = False) -> int:
    import argparse

    from model_registry.settings import RegistrySettings
    from model_registry.training import train_and_register

    settings = RegistrySettings()
    result = train_and_register(settings, promote=True)
    print(f"trained and registered v{result.version}: {result.gate.reason if result.gate else ''}")
    return cmd_versions(argparse.Namespace())
