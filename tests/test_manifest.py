"""Manifest v1: validation names the field, files are private and atomic, display redacts secrets."""
from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from s3mpu import manifest as manifests
from s3mpu.errors import ManifestError, NoInputError
from s3mpu.manifest import Manifest, Part, Relay

MiB = 1 << 20


def sample(size: int = 12 * MiB, part_size: int = 5 * MiB, size_is_max: bool = False) -> Manifest:
    n = max(1, -(-size // part_size))
    parts = tuple(Part(i + 1, i * part_size, min(part_size, size - i * part_size),
                       f"https://s3.example.com/b/k?partNumber={i + 1}&uploadId=U&X-Amz-Signature=deadbeef{i}")
                  for i in range(n))
    return Manifest(endpoint="https://s3.example.com", region="us-east-1", bucket="b", key="k", upload_id="U",
                    size=size, size_is_max=size_is_max, part_size=part_size, created_at="2026-11-28T10:00:00Z",
                    expires_at="2026-12-05T10:00:00Z", parts=parts, content_type="video/quicktime",
                    relay=Relay("https://relay.example.com", "v1.payload.sig"),
                    list_parts_url="https://s3.example.com/b/k?uploadId=U&X-Amz-Signature=abc",
                    abort_url="https://s3.example.com/b/k?uploadId=U&X-Amz-Signature=def")


def test_roundtrip() -> None:
    m = sample()
    assert manifests.loads(m.to_json()) == m
    assert json.loads(m.to_json())["format"] == "s3mpu.manifest/1"


def mutate(fn: Any) -> str:
    d = sample().to_dict()
    fn(d)
    return json.dumps(d)


@pytest.mark.parametrize("change,field", [
    (lambda d: d.pop("upload_id"), "upload_id"),
    (lambda d: d.update(size="big"), "size"),
    (lambda d: d["parts"][1].update(size=1), "parts[1]"),
    (lambda d: d["parts"][0].pop("url"), "parts[0]"),
    (lambda d: d["parts"].pop(), "parts"),
    (lambda d: d.update(expires_at="soon"), "expires_at"),
    (lambda d: d["parts"][0].update(url="ftp://x"), "parts[0].url"),
    (lambda d: d.update(format="other/1"), "format"),
    (lambda d: d.update(part_size=0), "part_size"),
])
def test_validation_names_the_field(change: Any, field: str) -> None:
    with pytest.raises(ManifestError) as info:
        manifests.loads(mutate(change))
    assert field in str(info.value).splitlines()[0]
    assert info.value.exit_code == 65


def test_truncated_and_garbage() -> None:
    text = sample().to_json()
    with pytest.raises(ManifestError, match="truncated"):
        manifests.loads(text[: len(text) // 2])
    with pytest.raises(ManifestError):
        manifests.loads(b"\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match="not a JSON object"):
        manifests.loads("[1, 2]")


def test_dump_is_private_and_atomic(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "m.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    manifests.dump(sample(), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert manifests.load(target) == sample()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.json"]  # no temp file left behind


def test_stdin_stdout() -> None:
    out = io.StringIO()
    manifests.dump(sample(), "-", stdout=out)
    assert manifests.load("-", stdin=io.BytesIO(out.getvalue().encode())) == sample()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NoInputError, match="not found"):
        manifests.load(tmp_path / "nope.json")


def test_redacted_hides_signatures_and_token() -> None:
    text = json.dumps(sample().redacted())
    assert "deadbeef" not in text and "X-Amz-Signature=REDACTED" in text
    assert ".sig" not in text and "REDACTED" in text


def test_parts_for_file_max_size() -> None:
    m = sample(size=20 * MiB, size_is_max=True)
    used = m.parts_for_file(7 * MiB)
    assert [(p.number, p.size) for p in used] == [(1, 5 * MiB), (2, 2 * MiB)]
    assert [p.size for p in m.parts_for_file(0)] == [0]
    assert len(sample().parts_for_file(12 * MiB)) == 3


def test_schema_ships_in_package() -> None:
    assert manifests.schema()["title"] == "s3mpu manifest v1"


def _big_doc(n: int = 10_000) -> dict[str, Any]:
    return sample(size=n * 5 * MiB).to_dict()


@pytest.mark.parametrize("change,message", [
    (lambda d: d["parts"][9_999].update(md5="A" * 32), "manifest field parts[9999].md5: 'AAAA"),
    (lambda d: d["parts"][9_998].update(number=0), "manifest field parts[9998].number: 0 is invalid (minimum 1)"),
    (lambda d: d["parts"][5_000].update(extra=1), "manifest field parts[5000]: unexpected field 'extra'"),
    (lambda d: d["parts"][7].pop("url"), "manifest field parts[7]: 'url' is missing"),
    (lambda d: d["parts"].append(d["parts"][0]), "manifest field parts: "),
    (lambda d: d.update(sha256="f" * 63), "manifest field sha256: 'ffff"),
    (lambda d: d.update(relay={"token": "t"}), "manifest field relay: 'url' is missing"),
    (lambda d: d.update(bogus=1, other=2), "manifest field (top level): unexpected fields 'bogus', 'other'"),
    (lambda d: d.update(list_parts_pages=["ftp://x"]), "manifest field list_parts_pages[0]: 'ftp://x' is malformed"),
])
def test_one_validator_names_the_field_at_10000_parts(change: Any, message: str) -> None:
    """fastjsonschema on the shipped schema is the only validator; its errors name the field, one line."""
    doc = _big_doc()
    change(doc)
    with pytest.raises(ManifestError) as info:
        manifests.validate(doc)
    assert str(info.value.message).startswith(message), info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 200


def test_large_manifest_round_trips_through_its_json() -> None:
    m = sample(size=10_000 * 5 * MiB)
    text = m.to_json()
    assert manifests.loads(text) == m
    assert json.loads(text) == m.to_dict()
    lines = text.splitlines()
    assert len(lines) == len(m.to_dict()) + 10_000 + 3  # a line per field, a line per part, brackets
    assert lines[0] == "{" and lines[1] == ' "format": "s3mpu.manifest/1",' and lines[-1] == "}"
    first = lines.index(' "parts": [') + 1
    assert json.loads(lines[first].rstrip(",")) == {"number": 1, "offset": 0, "size": 5 * MiB, "url": m.parts[0].url,
                                                 "md5": None}
    assert json.loads(m.to_json(indent=None)) == m.to_dict()


def test_part_lines_split_only_between_parts() -> None:
    """A string holding the text that separates parts stays whole: its quotes are escaped."""
    from dataclasses import replace

    m = sample(size=3 * 5 * MiB)
    tricky = m.parts[1].url + '&x=}, {"number": 9'
    m = m.with_updates(parts=(m.parts[0], replace(m.parts[1], url=tricky), m.parts[2]))
    text = m.to_json()
    lines = text.splitlines()
    first = lines.index(' "parts": [') + 1
    assert [json.loads(line.rstrip(","))["number"] for line in lines[first:first + 3]] == [1, 2, 3]
    assert lines[first + 3] == " ],"
    assert json.loads(text) == m.to_dict()


@pytest.mark.parametrize("url,shown", [
    ("https://h/b/k?partNumber=1&uploadId=U&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F2026%2Fus&"
     "X-Amz-Date=20261130T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=content-length%3Bhost&X-Amz-Signature=ab12",
     "https://h/b/k?partNumber=1&uploadId=U&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&"
     "X-Amz-Date=20261130T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=content-length%3Bhost&X-Amz-Signature=REDACTED"),
    ("http://h/b/k?AWSAccessKeyId=AK&Expires=9&Signature=a%2Bb%3D&partNumber=2&uploadId=U",
     "http://h/b/k?AWSAccessKeyId=REDACTED&Expires=9&Signature=REDACTED&partNumber=2&uploadId=U"),
    ("https://h/b/k?x-amz-security-token=T0k&x-amz-signature=s#frag", "https://h/b/k?x-amz-security-token=REDACTED&"
     "x-amz-signature=REDACTED"),
    ("https://h/b/my-signature=k?uploadId=U", "https://h/b/my-signature=k?uploadId=U"),
])
def test_redact_url_masks_only_credentials(url: str, shown: str) -> None:
    assert manifests.redact_url(url) == shown
