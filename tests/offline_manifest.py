"""A Manifest whose URLs point nowhere, for tests of part layout and sources that send no byte."""
from __future__ import annotations

from s3mpu.manifest import Manifest, Part


def offline_manifest(size: int, part_size: int, is_max: bool) -> Manifest:
    """Parts of ``part_size`` covering ``size`` bytes (one empty part for 0), URLs on a closed port."""
    n = max(1, -(-size // part_size))
    parts = tuple(Part(i + 1, i * part_size, min(part_size, size - i * part_size), f"http://127.0.0.1:9/p{i + 1}")
                  for i in range(n))
    return Manifest(endpoint="http://127.0.0.1:9", region="us-east-1", bucket="bkt", key="k", upload_id="u", size=size,
                    size_is_max=is_max, part_size=part_size, created_at="2026-01-01T00:00:00Z",
                    expires_at="2099-01-01T00:00:00Z", parts=parts)
