"""Plans: hashing, the JSON format, validation (65 naming the field), and the plan command."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from s3mpu.cli import cli
from s3mpu.errors import DataError, NoInputError
from s3mpu.admin.plan import FORMAT, check_file, load_plan, loads, make_plan

MiB = 1024 * 1024


def test_make_plan_hashes_each_part_and_the_file(make_data: Any) -> None:
    path = make_data(11 * MiB + 17)
    data = path.read_bytes()
    seen: list[int] = []
    p = make_plan(path, 5 * MiB, progress=seen.append)
    assert (p.size, p.part_size, len(p.parts)) == (len(data), 5 * MiB, 3)
    assert p.md5s == [hashlib.md5(data[o:o + 5 * MiB]).hexdigest() for o in (0, 5 * MiB, 10 * MiB)]
    assert p.parts[2].size == MiB + 17
    assert p.sha256 == hashlib.sha256(data).hexdigest()
    assert sum(seen) == len(data)
    assert p.file == path.name  # base name only: no local path leaks into a plan


def test_auto_part_size_and_empty_file(make_data: Any) -> None:
    assert make_plan(make_data(3 * MiB, "small")).part_size == 8 * MiB
    empty = make_plan(make_data(0, "empty"))
    assert empty.size == 0 and empty.md5s == [hashlib.md5(b"").hexdigest()]


def test_roundtrip(make_data: Any, tmp_path: Path) -> None:
    p = make_plan(make_data(6 * MiB), 5 * MiB)
    text = p.to_json()
    assert json.loads(text)["format"] == FORMAT
    q = loads(text)
    assert q == p


def _plan_dict(make_data: Any) -> dict[str, Any]:
    return make_plan(make_data(6 * MiB), 5 * MiB).to_dict()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(format="s3mpu.manifest/1"), "format"),
    (lambda d: d.pop("sha256"), "sha256"),
    (lambda d: d.update(sha256="zz" * 32), "sha256"),
    (lambda d: d.update(size="6M"), "size"),
    (lambda d: d.update(part_size=0), "part_size"),
    (lambda d: d.update(size=20 * MiB), "parts"),
    (lambda d: d["parts"].pop(), "parts"),
    (lambda d: d["parts"][1].update(md5="abc"), "parts[1].md5"),
    (lambda d: d["parts"][0].update(offset=1), "parts[0]"),
    (lambda d: d["parts"][1].pop("size"), "parts[1].size"),
])
def test_validation_names_the_field(make_data: Any, mutate: Any, field: str) -> None:
    d = _plan_dict(make_data)
    mutate(d)
    with pytest.raises(DataError) as info:
        loads(json.dumps(d))
    assert info.value.exit_code == 65 and info.value.field == field and field.split("[")[0] in info.value.message


def test_truncated_and_missing(tmp_path: Path, make_data: Any) -> None:
    path = tmp_path / "p.json"
    path.write_text(make_plan(make_data(6 * MiB), 5 * MiB).to_json()[:100])
    with pytest.raises(DataError, match="not valid JSON"):
        load_plan(path)
    with pytest.raises(NoInputError):
        load_plan(tmp_path / "nope.json")


def test_check_file(make_data: Any) -> None:
    path = make_data(6 * MiB)
    p = make_plan(path, 5 * MiB)
    check_file(p, path)
    other = make_data(6 * MiB, "other", seed=1)
    with pytest.raises(DataError, match="differs from the plan in part 1"):
        check_file(p, other)
    shorter = make_data(6 * MiB - 1, "short")
    with pytest.raises(DataError, match="bytes but the plan is for"):
        check_file(p, shorter)


def test_plan_command(make_data: Any, tmp_path: Path) -> None:
    path = make_data(6 * MiB)
    out = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["plan", str(path), "--part-size", "5M", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["parts"] == 2 and report["plan"] == str(out)
    assert load_plan(out).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    to_stdout = CliRunner().invoke(cli, ["plan", str(path), "--part-size", "5M"])
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["format"] == FORMAT


def test_plan_command_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["plan", str(tmp_path / "missing.bin")])
    assert r.exit_code == 66 and "file not found" in r.output
    bad = tmp_path / "bad.plan"
    bad.write_text('{"format": "s3mpu.plan/1", "size": 1}')
    r = CliRunner().invoke(cli, ["mint", "s3://bucket/key", "--plan", str(bad)])
    assert r.exit_code == 65 and "plan field" in r.output and "Traceback" not in r.output


def test_plan_and_size_together_is_usage_error(make_data: Any, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    CliRunner().invoke(cli, ["plan", str(make_data(10)), "-o", str(out)])
    r = CliRunner().invoke(cli, ["mint", "s3://bucket/key", "--plan", str(out), "--size", "10"])
    assert r.exit_code == 64


def test_plan_with_other_part_size_is_usage_error(make_data: Any, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    assert CliRunner().invoke(cli, ["plan", str(make_data(10)), "--part-size", "5M", "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(cli, ["mint", "s3://bucket/key", "--plan", str(out), "--part-size", "8M"])
    assert r.exit_code == 64 and "differs from the plan" in r.output
