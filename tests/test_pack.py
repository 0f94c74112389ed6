"""s3mpu.pack: which distributions go in, what is refused (the runs of the pack itself: tests/e2e/test_pack_runs.py)."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from s3mpu import pack
from s3mpu.errors import ConfigError, NoInputError


def test_requirements_leave_out_the_admin_side_and_keep_the_user_sides() -> None:
    dists, _skipped = pack.requirements()
    names = {pack._norm(d.metadata["Name"]) for d in dists}
    assert {"click", "urllib3", "rich", "tqdm", "fastjsonschema", "itsdangerous"} <= names
    assert not names & pack.EXCLUDED
    assert not names & {"jinja2", "markupsafe", "blinker", "jmespath", "s3transfer"}  # only the excluded need them


def test_requirement_parsing() -> None:
    assert pack._requirement('typing-extensions>=4; python_version < "3.11"') == ("typing-extensions",
                                                                                'python_version < "3.11"')
    assert pack._requirement("Markdown_It.Py (>=2.2.0)") == ("markdown-it-py", "")


def test_missing_requirement_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.distribution

    def fake(name: str) -> Any:
        if pack._norm(name) == "tqdm":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(pack.metadata, "distribution", fake)
    with pytest.raises(ConfigError) as err:
        pack.requirements()
    assert "tqdm, required by s3mpu, is not installed" in err.value.message and "pip install tqdm" in err.value.hint


def test_compiled_code_is_refused(tmp_path: Path) -> None:
    class Compiled:
        metadata = {"Name": "fastthing"}
        files = [metadata_path("fastthing/__init__.py"), metadata_path("fastthing/_speed.cpython-311-x86_64-linux-gnu.so")]

        def locate_file(self, rel: Any) -> Path:
            return tmp_path / str(rel)

    with pytest.raises(ConfigError, match="fastthing contains compiled code"):
        pack._copy_distribution(Compiled(), tmp_path / "stage")  # type: ignore[arg-type]


def metadata_path(p: str) -> Any:
    return metadata.PackagePath(p)


def test_output_in_a_missing_directory_is_66(tmp_path: Path) -> None:
    with pytest.raises(NoInputError) as err:
        pack.build(tmp_path / "nope" / "s3mpu.pyz")
    assert err.value.exit_code == 66 and "is not a directory" in err.value.message
