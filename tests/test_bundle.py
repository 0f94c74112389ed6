"""Bundle v1: loading judges every field and every path; hostile shapes are a clear 65, never a traceback."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3mpu.bundle import Bundle, BundleError, is_bundle, key_problem, loads, path_problem
from s3mpu.errors import S3mpuError

URL = "http://127.0.0.1:9/bk/in/a.txt?X-Amz-Signature=feedc0de"
GOOD: dict[str, Any] = {
    "format": "s3mpu.bundle/1", "id": "0123456789abcdef0123456789abcdef", "endpoint": "http://127.0.0.1:9",
    "region": "us-east-1", "bucket": "bk", "prefix": "in/", "created_at": "2026-12-04T00:00:00Z",
    "expires_at": "2026-12-05T00:00:00Z", "signature_version": "s3v4", "relay": None,
    "objects": [{"path": "a.txt", "key": "in/a.txt", "size": 3, "content_type": "text/plain", "url": URL,
                 "md5": None, "headers": {}},
                {"path": "sub/ü.bin", "key": "in/sub/ü.bin", "size": 0, "url": URL}]}


def bad(change: Any) -> str:
    doc = copy.deepcopy(GOOD)
    change(doc)
    with pytest.raises(BundleError) as e:
        Bundle.from_dict(doc)
    assert e.value.exit_code == 65
    return e.value.message


def test_a_bundle_round_trips_through_its_json_and_its_redaction_hides_signatures() -> None:
    b = Bundle.from_dict(copy.deepcopy(GOOD))
    assert loads(b.to_json()).to_dict() == b.to_dict()
    assert "feedc0de" not in json.dumps(b.redacted()) and b.uri == "s3://bk/in/" and b.total_size == 3
    assert is_bundle(GOOD) and not is_bundle({"format": "s3mpu.manifest/1"})


@pytest.mark.parametrize("path, why", [
    ("../x", "'..'"), ("/etc/passwd", "absolute"), ("a//b", "empty"), ("a\\..\\b", "backslash"),
    ("C:evil", "absolute"), ("./a", "'.'"), ("a\x00b", "NUL"), ("bad\udcff", "UTF-8"), ("", "empty")])
def test_hostile_paths_are_named_and_refused(path: str, why: str) -> None:
    assert why in (path_problem(path) or "")

    def change(d: Any) -> None:
        d["objects"][0]["path"] = path
        d["objects"][0]["key"] = "in/" + path
    assert why in bad(change) or "path" in bad(change)


def test_cross_field_lies_are_refused() -> None:
    assert "is not the prefix" in bad(lambda d: d["objects"][0].update(key="other/a.txt"))
    assert "named twice" in bad(lambda d: d["objects"][1].update(path="a.txt", key="in/a.txt"))
    assert "end in '/'" in bad(lambda d: d.update(prefix="in"))
    assert "single-PUT" in bad(lambda d: d["objects"][0].update(size=6 * 1024 ** 3))
    assert "objects[0]" in bad(lambda d: d["objects"][0].update(manifest={"format": "s3mpu.manifest/1"}))
    assert "not an ISO-8601" in bad(lambda d: d.update(expires_at="tomorrow"))
    long = "x" * 1030
    assert key_problem("in/" + long) and "1024-byte" in bad(lambda d: d["objects"][0].update(path=long, key="in/" + long))


def test_a_manifest_given_as_a_bundle_says_so() -> None:
    assert "format" in bad(lambda d: d.update(format="s3mpu.manifest/1"))


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(field=st.sampled_from(["id", "endpoint", "bucket", "prefix", "objects", "relay", "expires_at", "format"]),
       obj_field=st.sampled_from(["path", "key", "size", "url", "md5", "headers", "manifest", "content_type"]),
       value=json_values, where=st.booleans())
def test_any_mangled_field_is_a_bundle_error_never_a_crash(field: str, obj_field: str, value: Any, where: bool) -> None:
    doc = copy.deepcopy(GOOD)
    if where:
        doc[field] = value
    else:
        doc["objects"][0][obj_field] = value
    try:
        Bundle.from_dict(doc)
    except S3mpuError as exc:
        assert exc.exit_code == 65


objects = st.fixed_dictionaries(
    {"path": st.one_of(st.text(max_size=5), st.integers()), "key": st.text(min_size=0, max_size=5),
     "size": st.one_of(st.integers(-3, 10), st.booleans(), st.none())},
    optional={"url": st.one_of(st.text(max_size=3), st.none()), "md5": st.one_of(st.none(), st.just("0" * 32),
                                                                                  st.text(max_size=3)),
              "headers": st.one_of(st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()),
                                                   max_size=2), st.lists(st.text(), max_size=1)),
              "content_type": st.one_of(st.none(), st.text(max_size=3), st.integers()),
              "manifest": st.one_of(st.just({}), st.text(max_size=2)), "extra": st.none()})


@settings(max_examples=400, deadline=None)
@given(obj=objects)
def test_the_fast_object_check_agrees_with_the_shipped_schema(obj: dict[str, Any]) -> None:
    import fastjsonschema

    from s3mpu.bundle import object_ok, object_problem, schema

    full = fastjsonschema.compile(schema()["properties"]["objects"]["items"], use_formats=False)
    try:
        full(obj)
        by_schema = True
    except fastjsonschema.JsonSchemaValueException:
        by_schema = False
    assert (object_problem(obj) is None) == by_schema, (obj, object_problem(obj))
    assert object_ok(obj) == by_schema, obj


@settings(max_examples=1000, deadline=None)
@given(path=st.text(alphabet=st.sampled_from(list("ab./\\:\x00C-é")), max_size=12))
def test_the_fast_path_check_never_passes_a_path_the_full_check_refuses(path: str) -> None:
    from s3mpu.bundle import full_path_problem

    assert (path_problem(path) is None) == (full_path_problem(path) is None)


def test_a_damaged_bundle_is_65_whatever_the_folder_argument_is(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from s3mpu.cli import cli

    damaged = tmp_path / "b.json"
    damaged.write_bytes(b'"s3mpu.bundle/')  # found by hypothesis: judged by its head, then by its folder
    (tmp_path / "f.bin").write_bytes(b"x")
    for folder in ("f.bin", "missing-dir"):
        r = CliRunner().invoke(cli, ["put", str(damaged), str(tmp_path / folder)])
        assert r.exit_code == 65 and "not valid JSON" in r.output, r.output
