"""The fast pre-checks of manifests never change what validation accepts or what it says.

``manifest.validate`` skips jsonschema entirely for a document that passes a plain-Python check
stricter than the schema (``put`` never imports it), and for parts that pass one when the
document as a whole needs jsonschema (a 10,000-part manifest with one odd field still loads in
~0.1 s instead of ~0.5 s). Every case here is validated twice, with the pre-checks and with
jsonschema alone, and must give the same result.
"""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3mpu import manifest as manifests
from s3mpu.errors import ManifestError
from s3mpu.manifest import Manifest, Part

MiB = 1 << 20


def _doc(n: int = 20, md5: bool = False) -> dict[str, Any]:
    parts = tuple(Part(i + 1, i * 5 * MiB, 5 * MiB, f"http://127.0.0.1:9000/bucket/k?partNumber={i + 1}&uploadId=u-1&X-Amz-Signature=ab",
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
        mp.setattr(manifests, "_plainly_valid_document", lambda d: False)  # ... and for the document
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


DOC_CHANGES: list[tuple[str, Any]] = [
    ("endpoint", ""), ("endpoint", 5), ("region", ""), ("region", None), ("bucket", ""), ("key", None),
    ("upload_id", ""), ("size", -1), ("size", 1.0), ("size", True), ("size_is_max", 0), ("size_is_max", "yes"),
    ("part_size", 0), ("part_size", "5M"), ("created_at", ""), ("expires_at", 17), ("content_type", 3),
    ("content_type", None), ("content_type", "text/plain"), ("metadata", {"a": 1}), ("metadata", {"a": "b"}),
    ("metadata", []), ("signature_version", "s3"), ("signature_version", "v2"), ("signature_version", None),
    ("sha256", "a" * 64), ("sha256", "A" * 64), ("sha256", "a" * 63), ("sha256", None), ("sha256", 5),
    ("relay", None), ("relay", {"url": "http://r"}), ("relay", {"url": None, "token": "t"}), ("relay", {"token": "t"}),
    ("relay", {"url": "http://r", "x": 1}), ("relay", {"url": 5}), ("relay", "http://r"),
    ("list_parts_url", None), ("list_parts_url", "ftp://x"), ("list_parts_url", "https://x"), ("abort_url", 1),
    ("list_parts_pages", []), ("list_parts_pages", ["http://p"] * 11), ("list_parts_pages", ["http://p", None]),
    ("list_parts_pages", "http://p"), ("format", "s3mpu.manifest/2"), ("surprise", 1),
]


@pytest.mark.parametrize("field,value", DOC_CHANGES, ids=[f"{f}={v!r}" for f, v in DOC_CHANGES])
def test_changed_field_gives_the_same_verdict(field: str, value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc()
    doc[field] = value
    fast, full = _both(doc, monkeypatch)
    assert fast == full


_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 10_001), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "s3", "s3v4", "http://h/x", "ftp://h", "a" * 32, "a" * 64, "A" * 64]),
                    st.lists(st.sampled_from(["http://p", 1, None]), max_size=3),
                    st.dictionaries(st.sampled_from(["url", "token", "a", "x"]),
                                    st.one_of(st.none(), st.text(max_size=3), st.integers()), max_size=3))
_fields = st.sampled_from(sorted(manifests._TOP_KEYS | {"extra"}))  # noqa: SLF001
_part_fields = st.sampled_from(["number", "offset", "size", "url", "md5", "extra"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(_fields, _values), max_size=3),
       part_changes=st.lists(st.tuples(st.integers(0, 19), _part_fields, _values), max_size=2),
       drops=st.lists(_fields, max_size=2))
def test_random_documents_give_the_same_verdict(changes: list[tuple[str, Any]], part_changes: list[tuple[int, str, Any]],
                                               drops: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc(md5=True)
    for f, v in changes:
        doc[f] = v
    for i, f, v in part_changes:
        if isinstance(doc.get("parts"), list) and i < len(doc["parts"]) and isinstance(doc["parts"][i], dict):
            doc["parts"][i][f] = v
    for f in drops:
        doc.pop(f, None)
    fast, full = _both(doc, monkeypatch)
    assert fast == full


def test_pre_check_takes_ordinary_manifests_whole() -> None:
    """The document-level equivalence above only means something if the fast path is really taken."""
    assert manifests._plainly_valid_document(_doc(md5=True))  # noqa: SLF001
    assert not manifests._plainly_valid_document({**_doc(), "size": 1.0})  # noqa: SLF001


def test_loading_a_valid_manifest_does_not_import_jsonschema(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(Manifest.from_dict(_doc()).to_json())
    code = ("import sys; from s3mpu import manifest; manifest.load(sys.argv[1]); "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
