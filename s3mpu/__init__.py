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
    s3mpu.upload("raw.json", "raw.mov", complete=False)        # parts only (or on several machines) ...
    s3mpu.complete("raw.json")                                 # ... then complete, as `s3mpu complete` does

Content-bound manifests (S3 itself refuses other bytes)::

    p = s3mpu.plan("raw.mov", output="raw.plan.json")          # user: per-part MD5 + SHA-256
    m = s3mpu.mint("s3://media/raw.mov", plan="raw.plan.json")  # admin

Folders (bundles, SPEC §8): one handoff for every file under a prefix::

    p = s3mpu.plan_directory("photos/", output="photos.plan.json")       # user (sizes_only=True: no hashing)
    b = s3mpu.mint_bundle("s3://media/photos/", p, relay_url="https://relay.example",
                          output="photos.bundle.json")                     # admin
    result = s3mpu.put_bundle("photos.bundle.json", "photos/")          # user: small files many at once
    print(result.done, result.objects, [f.path for f in result.failed])

Housekeeping::

    for u in s3mpu.list_uploads(s3mpu.s3_client(s3mpu.load_settings()), "media"):
        print(u.key, u.upload_id, u.age_seconds, u.parts, u.size)

Errors are :class:`S3mpuError` subclasses; ``err.exit_code`` is the CLI's exit status and
``err.hint`` says what to do next.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # verbs (the modules behind them are s3mpu.admin.mint, s3mpu.user.upload, s3mpu.admin.plan)
    "mint": ("s3mpu.api", "mint"),
    "upload": ("s3mpu.api", "upload"),
    "complete": ("s3mpu.api", "complete"),
    "plan": ("s3mpu.api", "plan"),
    "plan_directory": ("s3mpu.api", "plan_directory"),
    "mint_bundle": ("s3mpu.api", "mint_bundle"),
    "refresh": ("s3mpu.admin.mint", "refresh"),
    "put_bundle": ("s3mpu.user.bundle_put", "put_bundle"),
    "list_uploads": ("s3mpu.admin.housekeeping", "list_uploads"),
    "abort_upload": ("s3mpu.admin.housekeeping", "abort_upload"),
    "cleanup": ("s3mpu.admin.housekeeping", "cleanup"),
    # data
    "Manifest": ("s3mpu.manifest", "Manifest"),
    "Part": ("s3mpu.manifest", "Part"),
    "load_manifest": ("s3mpu.manifest", "load"),
    "dump_manifest": ("s3mpu.manifest", "dump"),
    "Plan": ("s3mpu.admin.plan", "Plan"),
    "Bundle": ("s3mpu.bundle", "Bundle"),
    "load_bundle": ("s3mpu.bundle", "load"),
    "BundleResult": ("s3mpu.user.bundle_result", "BundleResult"),
    "load_plan": ("s3mpu.admin.plan", "load_plan"),
    "MintRequest": ("s3mpu.admin.mint", "MintRequest"),
    "DirPlan": ("s3mpu.plan_dir", "DirPlan"),
    "load_dir_plan": ("s3mpu.plan_dir", "load_dir_plan"),
    "dump_dir_plan": ("s3mpu.plan_dir", "dump_dir_plan"),
    "BundleRequest": ("s3mpu.admin.mint_bundle", "BundleRequest"),
    "UploadResult": ("s3mpu.user.upload", "UploadResult"),
    "UploadInfo": ("s3mpu.admin.housekeeping", "UploadInfo"),
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


__all__ = ["__version__", *_LAZY]
