"""The Python API for folders: plan_directory and mint_bundle, beside the single-file verbs."""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

import s3mpu
from s3mpu.config import Settings
from servers import S3Server

MiB = 1 << 20


def settings_for(server: S3Server) -> Settings:
    return Settings(access_key=server.access_key, secret_key=server.secret_key, endpoint_url=server.endpoint,
                    region=server.region, addressing="path")


def test_names_resolve_and_modules_do_not_shadow_verbs() -> None:
    import s3mpu.admin.mint_bundle
    import s3mpu.plan_dir

    assert callable(s3mpu.mint_bundle) and callable(s3mpu.plan_directory)
    assert s3mpu.DirPlan is s3mpu.plan_dir.DirPlan and s3mpu.BundleRequest is s3mpu.admin.mint_bundle.BundleRequest
    assert s3mpu.plan_directory.__doc__ and s3mpu.mint_bundle.__doc__


def test_plan_directory_then_mint_bundle(moto_server: S3Server, tmp_path: Path) -> None:
    root = tmp_path / "card"
    (root / "DCIM").mkdir(parents=True)
    (root / "DCIM" / "a.jpg").write_bytes(b"j" * 100)
    (root / "big.mp4").write_bytes(b"v" * (6 * MiB))
    (root / "skip.tmp").write_bytes(b"t")
    seen: list[Any] = []
    p = s3mpu.plan_directory(root, "5M", filters=[("exclude", "*.tmp")], progress=lambda *a: seen.append(a),
                             output=tmp_path / "p.json")
    assert [f.path for f in p.files] == ["big.mp4", "DCIM/a.jpg"] and seen
    assert s3mpu.load_dir_plan(tmp_path / "p.json") == p
    bucket = moto_server.bucket()
    b = s3mpu.mint_bundle(f"s3://{bucket}/in/", tmp_path / "p.json", expires="1h", settings=settings_for(moto_server),
                          output=tmp_path / "b.json")
    assert isinstance(b, s3mpu.Bundle) and [o.key for o in b.objects] == ["in/big.mp4", "in/DCIM/a.jpg"]
    assert b.objects[0].multipart and b.objects[1].content_type == "image/jpeg"
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
    with pytest.raises(s3mpu.UsageError, match="prefix ending in '/'"):
        s3mpu.mint_bundle(f"s3://{bucket}/in", p, settings=settings_for(moto_server))


def test_mint_bundle_refuses_a_client_that_would_presign_sigv2(moto_server: S3Server, tmp_path: Path) -> None:
    import boto3

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    s3mpu.plan_directory(tmp_path / "d", output=tmp_path / "p.json")
    bucket = moto_server.bucket()
    bare = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                        aws_access_key_id="a", aws_secret_access_key="b")
    with pytest.raises(s3mpu.UsageError, match="SigV2"):  # as mint() does: strict servers refuse SigV2 URLs
        s3mpu.mint_bundle(f"s3://{bucket}/in/", tmp_path / "p.json", client=bare, settings=Settings())
    assert moto_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
