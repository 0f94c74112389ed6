"""s3mpu: hand out the right to upload one large file to S3-compatible storage, without any key.

The Python API (names are imported lazily so ``import s3mpu`` stays cheap)::

    from s3mpu import Manifest, load_manifest, mint, upload
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Manifest": ("s3mpu.manifest", "Manifest"),
    "Part": ("s3mpu.manifest", "Part"),
    "load_manifest": ("s3mpu.manifest", "load"),
    "MintRequest": ("s3mpu.mint", "MintRequest"),
    "S3mpuError": ("s3mpu.errors", "S3mpuError"),
    "Settings": ("s3mpu.config", "Settings"),
    "load_settings": ("s3mpu.config", "load_settings"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 's3mpu' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
