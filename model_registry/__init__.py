"""Everything that talks to the MLflow registry: train and register, promote, roll back, history."""

from model_registry.client import ModelRegistry
from model_registry.errors import (
    PromotionRefused,
    RegistryError,
    RegistryUnavailable,
    RollbackRefused,
    VersionNotFound,
)
from model_registry.settings import RegistrySettings
from model_registry.versions import PromotionResult, RollbackResult, VersionInfo

__all__ = [
    "ModelRegistry",
    "PromotionRefused",
    "PromotionResult",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "RollbackRefused",
    "RollbackResult",
    "VersionInfo",
    "VersionNotFound",
]
