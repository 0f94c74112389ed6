"""Upload policy units (no network) and manifest fuzzing through ``s3mpu put``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3mpu.cli import cli
from s3mpu.errors import DataError, NoInputError, UsageError
from s3mpu.manifest import Manifest, Part
from s3mpu.user.upload import check_file, composite_etag, file_parts, verify_completed
from offline_manifest import offline_manifest

MiB = 1024 * 1024


def _manifest(size: int, part_size: int = 5 * MiB, is_max: bool = False) -> Manifest:
    return offline_manifest(size, part_size, is_max)


def test_check_file_exact_and_max(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert check_file(_manifest(10), f).size == 10
    with pytest.raises(DataError, match="is 10 bytes but the manifest is for exactly 11 bytes"):
        check_file(_manifest(11), f)
    assert check_file(_manifest(100, is_max=True), f).size == 10
    with pytest.raises(DataError, match="more than the manifest's maximum of 9 bytes"):
        check_file(_manifest(9, is_max=True), f)
    with pytest.raises(NoInputError):
        check_file(_manifest(10), tmp_path / "missing")
    with pytest.raises(NoInputError):
        check_file(_manifest(10), tmp_path)


def test_file_parts_for_max_size_and_subsets() -> None:
    m = _manifest(4 * 5 * MiB, is_max=True)
    every, mine = file_parts(m, 2 * 5 * MiB + 1, None)
    assert [p.number for p in every] == [1, 2, 3] and every[-1].size == 1 and mine == every
    _, mine = file_parts(m, 2 * 5 * MiB + 1, "2-")
    assert [p.number for p in mine] == [2, 3]
    with pytest.raises(UsageError):
        file_parts(m, 2 * 5 * MiB + 1, "4")


def test_composite_etag_and_verify_completed() -> None:
    md5s = [hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()]
    want = hashlib.md5(hashlib.md5(b"a").digest() + hashlib.md5(b"b").digest()).hexdigest() + "-2"
    assert composite_etag(md5s) == want
    verify_completed({"etag": want, "size": 2}, md5s, 2)
    verify_completed({"etag": "plainmd5", "size": 2}, md5s, 2)  # HEAD-style plain ETag: size is checked only
    with pytest.raises(DataError, match="composite"):
        verify_completed({"etag": "0" * 32 + "-2", "size": 2}, md5s, 2)
    with pytest.raises(DataError, match="bytes"):
        verify_completed({"etag": want, "size": 3}, md5s, 2)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("fuzz") / "f.bin"
    p.write_bytes(b"x" * 100)
    return p


def _put(manifest_text: bytes, data_file: Path, tmp_path: Path) -> Any:
    m = tmp_path / "m.json"
    m.write_bytes(manifest_text)
    return CliRunner().invoke(cli, ["put", str(m), str(data_file)])


def _assert_clean_65(r: Any) -> None:
    assert r.exit_code == 65, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines and lines[0].startswith("error: ") and len(lines) <= 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_manifest_is_65(raw: bytes, data_file: Path, tmp_path: Path) -> None:
    _assert_clean_65(_put(raw, data_file, tmp_path))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_json)
def test_fuzz_arbitrary_json_manifest_is_65(doc: Any, data_file: Path, tmp_path: Path) -> None:
    _assert_clean_65(_put(json.dumps(doc).encode(), data_file, tmp_path))


def _valid_doc() -> dict[str, Any]:
    return json.loads(_manifest(100, part_size=100).to_json())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["size", "part_size", "upload_id", "bucket", "parts", "expires_at", "endpoint",
                             "size_is_max", "relay", "format"]),
       value=_json)
def test_fuzz_tampered_field_is_65_or_network(path: str, value: Any, data_file: Path, tmp_path: Path) -> None:
    doc = _valid_doc()
    doc[path] = value
    r = _put(json.dumps(doc).encode(), data_file, tmp_path)
    # a tampered manifest that still validates goes on to the (unreachable) endpoint: 75/77, never a traceback
    assert "Traceback" not in r.output
    assert r.exit_code in (65, 75, 77), (r.exit_code, r.output)
    if r.exit_code == 65:
        _assert_clean_65(r)


class _DateServer:
    """A real local HTTP server answering ListParts (no parts) with a chosen ``Date`` header; PUTs counted."""

    def __init__(self, date: str) -> None:
        import http.server
        import threading

        outer = self
        self.puts = 0
        self.parts: dict[int, tuple[int, str]] = {}

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def date_time_string(self, timestamp: Any = None) -> str:
                return date

            def do_GET(self) -> None:  # noqa: N802
                held = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{e}\"</ETag><Size>{z}</Size></Part>"
                               for n, (z, e) in sorted(outer.parts.items()))
                body = f"<ListPartsResult><IsTruncated>false</IsTruncated>{held}</ListPartsResult>".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                outer.puts += 1
                n = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(n)
                outer.parts[int(self.path.rsplit("=", 1)[1])] = (n, hashlib.md5(data).hexdigest())
                self.send_response(200)
                self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _served_manifest(url: str, size: int, expires_at: str) -> Manifest:
    m = _manifest(size, part_size=5 * MiB)
    parts = tuple(Part(p.number, p.offset, p.size, f"{url}/k?partNumber={p.number}") for p in m.parts)
    return m.with_updates(endpoint=url, parts=parts, list_parts_url=f"{url}/k?uploadId=u", expires_at=expires_at)


def test_clock_skew_is_warned_and_server_clock_decides_expiry(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from s3mpu.errors import AccessDeniedError
    from s3mpu.user.upload import upload

    f = tmp_path / "f.bin"
    f.write_bytes(b"y" * 1000)
    now = datetime.now(timezone.utc)
    # the server's clock is 2 hours ahead: the manifest (expiring in 1 h by our clock) is already expired
    srv = _DateServer(format_datetime(now + timedelta(hours=2), usegmt=True))
    try:
        m = _served_manifest(srv.url, 1000, (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        warnings: list[str] = []
        with pytest.raises(AccessDeniedError, match="nothing was sent") as exc:
            upload(m, f, warn=warnings.append, state_dir=tmp_path, complete=False, manifest_path="m.json")
        assert "s3mpu mint --refresh m.json" in exc.value.hint
        assert any("behind the server" in w for w in warnings)
        assert srv.puts == 0
    finally:
        srv.stop()


def test_expiry_estimate_warns_when_rate_is_too_slow(tmp_path: Path) -> None:
    import threading
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from s3mpu.errors import InterruptedError_
    from s3mpu.user.upload import upload

    f = tmp_path / "f.bin"
    f.write_bytes(b"z" * 200_000)
    now = datetime.now(timezone.utc)
    srv = _DateServer(format_datetime(now, usegmt=True))
    try:
        m = _served_manifest(srv.url, 200_000, (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        cancel = threading.Event()
        warnings: list[str] = []

        def warn(text: str) -> None:
            warnings.append(text)
            cancel.set()  # seen the warning: stop the (slow) upload

        with pytest.raises(InterruptedError_):
            upload(m, f, limit_rate="100", warn=warn, cancel=cancel, state_dir=tmp_path, complete=False)
        assert any("expire" in w and "--limit-rate" in w for w in warnings)
    finally:
        srv.stop()


def test_library_upload_against_local_server_records_journal(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from s3mpu.user.journal import journal_path, read
    from s3mpu.user.upload import upload

    f = tmp_path / "f.bin"
    f.write_bytes(bytes(range(256)) * 50_000)  # 12.8 MB: 3 parts
    now = datetime.now(timezone.utc)
    srv = _DateServer(format_datetime(now, usegmt=True))
    try:
        m = _served_manifest(srv.url, f.stat().st_size, (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        r = upload(m, f, jobs=2, state_dir=tmp_path, complete=False)
        assert r.parts_uploaded == 3 and r.bytes_sent == f.stat().st_size and not r.completed
        _, parts = read(journal_path("u", tmp_path))
        assert sorted(parts) == [1, 2, 3]
        again = upload(m, f, jobs=2, state_dir=tmp_path, complete=False)
        assert again.parts_uploaded == 0 and again.parts_skipped == 3 and srv.puts == 3
    finally:
        srv.stop()
