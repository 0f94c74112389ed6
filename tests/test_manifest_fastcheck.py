"""The fast pre-check of manifest parts never changes what validation accepts or what it says.

``manifest.validate`` skips jsonschema for parts that pass a plain-Python check stricter than
the schema (a 10,000-part manifest loads in ~0.1 s instead of ~0.5 s). Every case here is
validated twice, with the pre-check and with jsonschema alone, and must give the same result.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from s3mpu import manifest as manifests
from s3mpu.errors import ManifestError
from s3mpu.manifest import Manifest, Part

MiB = 1 << 20


def _doc(n: int = 20, md5: bool = False) -> dict[str, Any]:
    parts = tuple(Part(i + 1, i * 5 * MiB, 5 * MiB, f"http://127.0.0.1:9000/b/k?partNumber={i + 1}&X-Amz-Signature=ab",
                       f"{i:032x}" if md5 else None) for i in range(n))
    m = Manifest(endpoint="http://127.0.0.1:9000", region="us-east-1", bucket="bucket", key="k", upload_id="u-1",
                 size=n * 5 * MiB, size_is_max=False, part_size=5 * MiB, created_at="2026-11-30T10:00:00Z",
                 expires_at="2026-12-07T10:00:00Z", parts=parts)
    return m.to_dict()


def _outcome(doc: Any) -> str | None:
    try:
        manifests.validate(doc)
    except ManifestError as exc:
        return exc.message
    return None


def _both(doc: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str | None, str | None]:
    fast = _outcome(copy.deepcopy(doc))
    with monkeypatch.context() as mp:
        mp.setattr(manifests, "_plainly_valid_part", lambda p: False)  # jsonschema for every part
        full = _outcome(copy.deepcopy(doc))
    return fast, full


PART_CHANGES: list[tuple[str, Any]] = [
    ("number", True), ("number", 6.0), ("number", 0), ("number", 10_001), ("number", "6"),
    ("offset", -1), ("offset", 2.5), ("offset", None), ("size", -1), ("size", "5"),
    ("url", "ftp://host/x"), ("url", "HTTP://host/x"), ("url", 5), ("url", "https://ok/x"),
    ("md5", "A" * 32), ("md5", "a" * 31), ("md5", "a" * 32 + "\n"), ("md5", "g" * 32), ("md5", None),
    ("md5", "0" * 32), ("extra", 1),
]


@pytest.mark.parametrize("field,value", PART_CHANGES, ids=[f"{f}={v!r}" for f, v in PART_CHANGES])
def test_changed_part_gives_the_same_verdict(field: str, value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc()
    doc["parts"][5][field] = value
    fast, full = _both(doc, monkeypatch)
    assert fast == full


@pytest.mark.parametrize("mutate", [
    lambda d: d["parts"][3].pop("url"),
    lambda d: d["parts"].__setitem__(7, None),
    lambda d: d["parts"].__setitem__(7, [1, 2]),
    lambda d: d.pop("bucket"),
    lambda d: d.__setitem__("size", "big"),
    lambda d: d.__setitem__("parts", []),
    lambda d: d.__setitem__("parts", d["parts"] * 501),  # 10,020 parts: beyond maxItems
    lambda d: None,
], ids=["part-missing-url", "part-null", "part-list", "no-bucket", "size-string", "no-parts", "too-many", "valid"])
def test_document_level_changes_give_the_same_verdict(mutate: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc()
    mutate(doc)
    fast, full = _both(doc, monkeypatch)
    assert fast == full


def test_content_bound_manifest_is_valid_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _both(_doc(md5=True), monkeypatch) == (None, None)


def test_large_manifest_round_trips() -> None:
    doc = _doc(10_000)
    manifests.validate(doc)  # no exception: a full-size manifest is valid
    m = Manifest.from_dict(doc)
    assert len(m.parts) == 10_000 and m.parts[-1].number == 10_000


def test_pre_check_accepts_ordinary_parts_and_refuses_odd_ones() -> None:
    """The equivalence tests above only mean something if the fast path is really taken."""
    doc = _doc(md5=True)
    assert all(manifests._plainly_valid_part(p) for p in doc["parts"])  # noqa: SLF001
    odd = [{**doc["parts"][0], "number": True}, {**doc["parts"][0], "md5": "A" * 32}, {**doc["parts"][0], "x": 1},
           {k: v for k, v in doc["parts"][0].items() if k != "size"}, None]
    assert not any(manifests._plainly_valid_part(p) for p in odd)  # noqa: SLF001
