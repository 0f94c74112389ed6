"""completions/ holds what `_S3MPU_COMPLETE=<shell>_source s3mpu` prints today, and it completes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s3mpu.cli import shellcomp

ROOT = Path(__file__).resolve().parents[1]


def s3mpu_env(**extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s3mpu"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **extra})


@pytest.mark.parametrize("shell", sorted(shellcomp.SHELLS))
def test_committed_script_is_current(shell: str) -> None:
    committed = (ROOT / "completions" / shellcomp.SHELLS[shell]).read_text(encoding="utf-8")
    fresh = s3mpu_env(_S3MPU_COMPLETE=f"{shell}_source")
    assert fresh.returncode == 0, fresh.stderr
    assert committed == fresh.stdout, f"completions/{shellcomp.SHELLS[shell]} is stale: python -m s3mpu.cli.shellcomp"
    assert shellcomp.source(shell) == committed


def test_check_mode_detects_stale(tmp_path: Path) -> None:
    assert shellcomp.main(["--check", str(ROOT / "completions")]) == 0
    shellcomp.write_all(tmp_path)
    assert shellcomp.stale(tmp_path) == []
    (tmp_path / "s3mpu.zsh").write_text("# old\n")
    (tmp_path / "s3mpu.fish").unlink()
    assert shellcomp.stale(tmp_path) == ["s3mpu.zsh", "s3mpu.fish"]
    assert shellcomp.main(["--check", str(tmp_path)]) == 1


def test_completion_knows_commands_and_options() -> None:
    r = s3mpu_env(_S3MPU_COMPLETE="bash_complete", COMP_WORDS="s3mpu li", COMP_CWORD="1")
    assert r.returncode == 0 and "listmp" in r.stdout.split(",")[-1].split()
    r = s3mpu_env(_S3MPU_COMPLETE="bash_complete", COMP_WORDS="s3mpu cleanup --o", COMP_CWORD="2")
    assert "--older-than" in r.stdout
    r = s3mpu_env(_S3MPU_COMPLETE="fish_complete", COMP_WORDS="s3mpu mint --pl", COMP_CWORD="--pl")
    assert "--plan" in r.stdout


def test_bash_script_parses() -> None:
    bash = shutil.which("bash")
    assert bash, "bash is part of every supported system"
    r = subprocess.run([bash, "-n", str(ROOT / "completions" / "s3mpu.bash")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def complete(shell: str, words: str, cwd: Path) -> list[str]:
    cword = words.split(" ")[-1] if shell == "fish" else str(len(words.split(" ")) - 1)
    r = subprocess.run([sys.executable, "-m", "s3mpu"], capture_output=True, text=True, timeout=60, cwd=cwd,
                       env={**os.environ, "_S3MPU_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
                            "COMP_CWORD": cword})
    assert r.returncode == 0, r.stderr
    if shell == "zsh":  # triples: type, value, description
        lines = r.stdout.splitlines()
        return [f"{t},{v}" for t, v in zip(lines[0::3], lines[1::3], strict=True)]
    return r.stdout.splitlines()


@pytest.mark.parametrize("words", ["s3mpu put m", "s3mpu info m", "s3mpu status m", "s3mpu complete m",
                                   "s3mpu abort m", "s3mpu mint --refresh m", "s3mpu mint s3://b/k --plan m"])
def test_manifest_arguments_complete_json_files_first(tmp_path: Path, words: str) -> None:
    for name in ("m.json", "m2.json", "mx.txt", "big.bin", ".m-hidden.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "mdir").mkdir()
    for shell in ("zsh", "fish"):
        got = complete(shell, words, tmp_path)
        assert got == ["plain,m.json", "plain,m2.json", "file,m"], (shell, got)
    assert complete("bash", words, tmp_path) == ["file,m"]  # bash: the shell's own path completion


def test_paths_complete_in_subdirectories_and_for_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text("{}")
    assert complete("zsh", "s3mpu put sub/", tmp_path) == ["plain,sub/a.json", "file,sub/"]
    assert complete("bash", "s3mpu -c ", tmp_path) == ["file,"]
    assert complete("zsh", "s3mpu status m.json d", tmp_path) == ["file,d"]
    assert complete("bash", "s3mpu put m.json d", tmp_path) == ["file,d"]
