"""The templated fast path of presigning (mint of 10,000 parts in ~0.05 s of signing instead of ~0.45 s).

botocore's canonical request of one part becomes a template; it is used only when it reproduces
botocore's canonical request for parts of other numbers and sizes, and the URLs stay
byte-identical to ``generate_presigned_url``'s, for every manifest shape.
"""
from __future__ import annotations

import hashlib
from typing import Any

import pytest

from s3mpu.admin.presign import Presigner, _signing_key, _Template
from s3mpu.layout import plan_parts
from test_presign import SHAPES, _client, _slow, frozen_clock  # noqa: F401 - the fixture is used by name

MiB = 1 << 20


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sign_length,with_md5", [(True, False), (True, True), (False, False), (False, True)])
def test_template_signs_exactly_like_botocore(shape: dict[str, Any], sign_length: bool, with_md5: bool) -> None:
    spans = plan_parts(2_000 * 5 * MiB + 3, 5 * MiB)  # 2,001 parts, the last one 3 bytes
    md5s = [hashlib.md5(str(s.number).encode()).hexdigest() for s in spans] if with_md5 else None
    p = Presigner(_client(**shape), "bucket-name", "dir/key with spaces+plus/ümlaut~tilde", "2~Upload.Id_-x", 3600)
    fast = p.part_urls(spans, sign_length, md5s)
    assert p.fast_path_used and p.template_used
    picks = [0, 1, 999, 1_000, 1_999, 2_000]
    assert [fast[i] for i in picks] == _slow(p, [spans[i] for i in picks], sign_length,
                                             [md5s[i] for i in picks] if md5s else None)


def test_template_refuses_a_canonical_request_it_cannot_reproduce() -> None:
    canonical = "PUT\n/b/k\npartNumber=1&uploadId=u\ncontent-length:5\nhost:h\n\ncontent-length;host\nUNSIGNED-PAYLOAD"
    sts = "AWS4-HMAC-SHA256\n20261130T000000Z\n20261130/us-east-1/s3/aws4_request\n" + "0" * 64
    assert _Template.build(canonical, sts, 1, {"Content-Length": "5"}, "20261130T000000Z") is not None
    assert _Template.build(canonical, sts, 2, {"Content-Length": "5"}, "t") is None  # part number not where said
    assert _Template.build(canonical, sts, 1, {"Content-Length": "6"}, "t") is None  # header value differs
    assert _Template.build(canonical, sts, 1, {"Content-Length": "5", "Content-MD5": "x"}, "t") is None
    t = _Template.build(canonical, sts, 1, {"Content-Length": "5"}, "t")
    assert t is not None and t.canonical(7, {"Content-Length": "9"}) == canonical.replace(
        "partNumber=1", "partNumber=7").replace("content-length:5", "content-length:9")


def test_signing_key_is_botocores_and_leaves_its_signer_as_it_was() -> None:
    """The key is the one botocore's signature() derives; one HMAC with it gives botocore's signature."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.credentials import Credentials

    auth = S3SigV4QueryAuth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"), "s3", "eu-west-1", 600)
    t = _Template.build("PUT\n/b/k\npartNumber=1\ncontent-length:5\nhost:h\n\ncontent-length;host\nUNSIGNED-PAYLOAD",
                        "AWS4-HMAC-SHA256\n20261130T000000Z\n20261130/eu-west-1/s3/aws4_request\n" + "0" * 64,
                        1, {"Content-Length": "5"}, "20261130T000000Z")
    assert t is not None
    signature, key = _signing_key(auth, "string to sign", t)
    assert signature == auth.signature("string to sign", t)
    t.use_key(key)
    assert t.signature("string to sign") == signature
    assert t.signature("another string") == auth.signature("another string", t)
    assert "_sign" not in vars(auth)  # botocore's method is back in charge
    other = S3SigV4QueryAuth(Credentials("AKIDEXAMPLE", "another secret"), "s3", "eu-west-1", 600)
    assert _signing_key(other, "string to sign", t)[1] != key
