"""``s3mpu request``'s kept manifest: re-running the same command resumes the same upload.

Why: ``request`` mints online, then uploads. Re-run after a failure, it used to mint a new
upload every time and leave the old one (with its parts) orphaned on the server. The manifest
is kept under a name derived from what the command asks for (relay, bucket, key and the
file's absolute path), so the same command finds it again; ``--save-manifest FILE`` keeps it
there instead, and a re-run with the same option finds it there.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from s3mpu.endpoints import normalize_endpoint
from s3mpu.errors import S3mpuError
from s3mpu.manifest import Manifest, load
from s3mpu.user.journal import state_dir


def kept_path(relay_url: str, bucket: str, key: str, file: str, directory: Path | None = None) -> Path:
    """Where ``request`` keeps the manifest of this relay/bucket/key/file (mode 0600, in the state dir)."""
    what = "\n".join([normalize_endpoint(relay_url), bucket, key, str(Path(file).resolve())])
    digest = hashlib.sha256(what.encode("utf-8")).hexdigest()[:32]
    return (directory or state_dir()) / "requests" / f"{digest}.json"


def load_kept(path: str | Path, bucket: str, key: str) -> Manifest | None:
    """The kept manifest at ``path`` when there is one for this bucket and key, else None."""
    if not Path(path).is_file():
        return None
    try:
        m = load(path)
    except S3mpuError:
        return None  # damaged: mint again rather than fail
    return m if (m.bucket, m.key) == (bucket, key) else None
