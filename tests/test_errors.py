"""The one exit-code map (SPEC §2)."""
from __future__ import annotations

import pytest

from s3mpu import errors as e


@pytest.mark.parametrize("exc,code", [
    (e.S3mpuError("x"), 1), (e.PartialError("x"), 2), (e.UsageError("x"), 64), (e.DataError("x"), 65),
    (e.ManifestError("x"), 65), (e.NoInputError("x"), 66), (e.TempFailError("x"), 75),
    (e.AccessDeniedError("x"), 77), (e.ConfigError("x"), 78), (e.InterruptedError_("x"), 130),
    (KeyboardInterrupt(), 130), (FileNotFoundError(), 66), (RuntimeError(), 1),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert e.exit_code_for(exc) == code


def test_message_and_hint() -> None:
    err = e.AccessDeniedError("URL expired", "Ask the admin for a refreshed manifest.")
    assert str(err) == "URL expired\nAsk the admin for a refreshed manifest."
