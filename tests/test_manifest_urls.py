"""A manifest's URLs must agree with its own fields (part number, upload id, bucket/key): exit 65 on load."""
from __future__ import annotations

import json
from typing import Any

import pytest

from s3mpu import manifest as manifests
from s3mpu.errors import ManifestError
from test_manifest import sample


def _doc() -> dict[str, Any]:
    return sample(size=12 * 1024 * 1024).to_dict()  # 3 parts at https://s3.example.com/b/k, upload id U


def _load(doc: dict[str, Any]) -> Any:
    return manifests.loads(json.dumps(doc))


def test_a_minted_shape_loads() -> None:
    assert len(_load(_doc()).parts) == 3


def test_swapped_part_urls_are_refused() -> None:
    d = _doc()
    d["parts"][0]["url"], d["parts"][1]["url"] = d["parts"][1]["url"], d["parts"][0]["url"]
    with pytest.raises(ManifestError) as err:
        _load(d)
    assert err.value.exit_code == 65 and err.value.field == "parts[0].url"
    assert "the URL of part 1 has partNumber=2" in err.value.message


def test_edited_key_is_refused() -> None:
    d = _doc()
    d["key"] = "hacked.bin"
    with pytest.raises(ManifestError) as err:
        _load(d)
    assert "'/b/k'" in err.value.message and "'hacked.bin'" in err.value.message


@pytest.mark.parametrize("field", ["list_parts_url", "abort_url"])
def test_listing_and_abort_urls_of_another_upload_are_refused(field: str) -> None:
    d = _doc()
    d[field] = d[field].replace("uploadId=U", "uploadId=OTHER")
    with pytest.raises(ManifestError) as err:
        _load(d)
    assert err.value.field == field and "another upload" in err.value.message


def test_part_url_without_upload_id_is_refused() -> None:
    d = _doc()
    d["parts"][2]["url"] = d["parts"][2]["url"].replace("&uploadId=U", "")
    with pytest.raises(ManifestError) as err:
        _load(d)
    assert err.value.field == "parts[2].url" and "no uploadId" in err.value.message


def test_virtual_host_style_quoted_keys_and_endpoint_paths_load() -> None:
    d = _doc()
    d["key"] = "dir/a b+c.bin"
    d["upload_id"] = "2~x/y="
    for i, p in enumerate(d["parts"]):
        p["url"] = f"https://b.s3.example.com/dir/a%20b%2Bc.bin?partNumber={i + 1}&uploadId=2~x%2Fy%3D&Signature=s"
    d["list_parts_url"] = "https://gw.example.com/s3/b/dir/a%20b%2Bc.bin?uploadId=2~x%2Fy%3D&X-Amz-Signature=a"
    d["abort_url"] = None
    m = _load(d)
    assert m.key == "dir/a b+c.bin"
