"""s3mpu: hand out the right to upload one large file to S3-compatible storage, without any key.

The Python API mirrors the command line. Names are imported lazily, so ``import s3mpu`` stays
cheap (no boto3, rich or flask until a function that needs them is used).

Admin side (credentials from ``AWS_*`` variables, ``~/.s3cfg``, or boto3's chain)::

    import s3mpu
    m = s3mpu.mint("s3://media/raw.mov", size="10G", expires="3d",
                   relay_url="https://relay.example", output="raw.json")
    print(m.upload_id, len(m.parts), m.expires_at)

    settings = s3mpu.load_settings("~/.s3cfg-minio")          # an s3cmd config file
    m = s3mpu.mint("media", "raw.mov", max_size="50G", settings=settings)

User side (no credentials)::

    result = s3mpu.upload("raw.json", "raw.mov")               # tqdm bar (a widget in notebooks)
    result = s3mpu.upload("raw.json", "raw.mov", progress=lambda done, total: print(done, total))
    print(result.etag, result.mib_per_s)

Content-bound manifests (S3 itself refuses other bytes)::

    p = s3mpu.plan("raw.mov", output="raw.plan.json")          # user: per-part MD5 + SHA-256
    m = s3mpu.mint("s3://media/raw.mov", plan="raw.plan.json")  # admin

Housekeeping::

    for u in s3mpu.list_uploads(s3mpu.s3_client(s3mpu.load_settings()), "media"):
        print(u.key, u.upload_id, u.age_seconds, u.parts, u.size)

Errors are :class:`S3mpuError` subclasses; ``err.exit_code`` is the CLI's exit status and
``err.hint`` says what to do next.
"""
from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # verbs (mint, upload and plan are _Verb objects below)
    "refresh": ("s3mpu.mint", "refresh"),
    "list_uploads": ("s3mpu.admin", "list_uploads"),
    "abort_upload": ("s3mpu.admin", "abort_upload"),
    "cleanup": ("s3mpu.admin", "cleanup"),
    # data
    "Manifest": ("s3mpu.manifest", "Manifest"),
    "Part": ("s3mpu.manifest", "Part"),
    "load_manifest": ("s3mpu.manifest", "load"),
    "dump_manifest": ("s3mpu.manifest", "dump"),
    "Plan": ("s3mpu.plan", "Plan"),
    "load_plan": ("s3mpu.plan", "load_plan"),
    "MintRequest": ("s3mpu.mint", "MintRequest"),
    "UploadResult": ("s3mpu.upload", "UploadResult"),
    "UploadInfo": ("s3mpu.admin", "UploadInfo"),
    "CallbackProgress": ("s3mpu.api", "CallbackProgress"),
    # configuration
    "Settings": ("s3mpu.config", "Settings"),
    "load_settings": ("s3mpu.config", "load_settings"),
    "s3_client": ("s3mpu.config", "s3_client"),
    # errors
    "S3mpuError": ("s3mpu.errors", "S3mpuError"),
    "UsageError": ("s3mpu.errors", "UsageError"),
    "DataError": ("s3mpu.errors", "DataError"),
    "ManifestError": ("s3mpu.errors", "ManifestError"),
    "NoInputError": ("s3mpu.errors", "NoInputError"),
    "TempFailError": ("s3mpu.errors", "TempFailError"),
    "AccessDeniedError": ("s3mpu.errors", "AccessDeniedError"),
    "ConfigError": ("s3mpu.errors", "ConfigError"),
    "PartialError": ("s3mpu.errors", "PartialError"),
}


class _Verb:
    """``s3mpu.mint``, ``s3mpu.upload`` and ``s3mpu.plan``: the API function *and* the submodule.

    Why: the API verbs share their names with the submodules ``s3mpu/mint.py``, ``upload.py``
    and ``plan.py``, and importing a submodule rebinds the package attribute. This object is
    callable (the function in :mod:`s3mpu.api`) and forwards attribute access to the submodule,
    so ``s3mpu.upload(...)``, ``s3mpu.upload.UploadResult``, ``import s3mpu.upload as u`` and
    ``monkeypatch.setattr("s3mpu.upload.upload", ...)`` all keep working.
    """

    __slots__ = ("_verb",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_verb", name)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature() and help() follow this
        import importlib

        return getattr(importlib.import_module("s3mpu.api"), self._verb)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.__wrapped__.__doc__

    @property
    def __name__(self) -> str:
        return self._verb

    def _module(self) -> Any:
        import importlib

        return importlib.import_module(f"s3mpu.{self._verb}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._module(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._module(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._module(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._module())

    def __repr__(self) -> str:
        return f"<s3mpu.{self._verb}: function s3mpu.api.{self._verb}, module s3mpu/{self._verb}.py>"


mint = _Verb("mint")
upload = _Verb("upload")
plan = _Verb("plan")
_VERBS = frozenset({"mint", "upload", "plan"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 's3mpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """Keeps the verbs bound when their submodules are imported (the import system rebinds them)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VERBS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["__version__", "mint", "upload", "plan", *_LAZY]
