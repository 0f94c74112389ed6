"""The API-token policy file: max_uploads, unique names (what refresh and the upload count key on)."""
from __future__ import annotations

import json

import pytest

from s3mpu.errors import ConfigError
from s3mpu.relay.config import load_api_tokens, policy_named


def _load(tmp_path, tokens):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": tokens}))
    return load_api_tokens(path)


def test_max_uploads_is_read(tmp_path) -> None:
    loaded = _load(tmp_path, [{"name": "a", "token": "t1", "bucket": "b", "max_uploads": 3},
                              {"name": "b", "token": "t2", "bucket": "b"}])
    assert [t.max_uploads for t in loaded] == [3, None]
    assert policy_named(loaded, "a") is loaded[0] and policy_named(loaded, "gone") is None


@pytest.mark.parametrize("bad", [0, -1, "3", 2.5, True])
def test_bad_max_uploads_refused(tmp_path, bad) -> None:
    with pytest.raises(ConfigError, match="max_uploads"):
        _load(tmp_path, [{"name": "a", "token": "t1", "bucket": "b", "max_uploads": bad}])


def test_duplicate_names_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="'a' is used twice"):
        _load(tmp_path, [{"name": "a", "token": "t1", "bucket": "b"}, {"name": "a", "token": "t2", "bucket": "c"}])
