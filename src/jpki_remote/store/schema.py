"""Imports every domain package's tables so that ``Base.metadata`` describes the whole schema."""

from __future__ import annotations

import importlib

from jpki_remote.store.database import Base

MODEL_MODULES = (
    "jpki_remote.registry.models",
    "jpki_remote.ca.models",
    "jpki_remote.proofing.models",
    "jpki_remote.procedures.models",
    "jpki_remote.audit.models",
    "jpki_remote.terminal.models",
    "jpki_remote.web.login_models",
)


def load_models() -> type[Base]:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base
