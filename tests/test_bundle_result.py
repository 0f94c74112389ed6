"""A bundle run's exit status (SPEC §8): 0 all landed, 2 some did, one cause's own code when none could."""
from __future__ import annotations

from s3mpu.errors import (AccessDeniedError, DataError, InterruptedError_, NoInputError, PartialError,
                          TempFailError)
from s3mpu.user.bundle_result import BundleResult, ObjectResult


def failed(path: str, err: object) -> ObjectResult:
    return ObjectResult(path, "in/" + path, 1, "failed", error=err)  # type: ignore[arg-type]


def result(**kw: object) -> BundleResult:
    return BundleResult("s3://b/in/", 4, rerun="s3mpu put b.json d", **kw)  # type: ignore[arg-type]


def test_every_object_landed_is_no_error() -> None:
    assert result(done=4).error() is None


def test_some_landed_some_failed_is_partial_naming_each_file() -> None:
    err = result(done=2, failed=[failed("a", NoInputError("a: missing")), failed("b", DataError("b: changed"))]).error()
    assert isinstance(err, PartialError) and err.exit_code == 2
    assert "a: missing" in err.message and "b: changed" in err.message and "s3mpu put b.json d" in err.hint


def test_none_landed_for_one_cause_is_that_cause() -> None:
    err = result(failed=[failed(p, TempFailError(f"{p}: refused")) for p in "abcd"]).error()
    assert isinstance(err, TempFailError) and err.exit_code == 75 and "none of the 4" in err.message
    expired = result(fatal=AccessDeniedError("URL expired", "Ask for a refreshed bundle."),
                     not_sent=[ObjectResult("a", "in/a", 1, "not_sent")]).error()
    assert isinstance(expired, AccessDeniedError) and expired.hint == "Ask for a refreshed bundle."


def test_none_landed_for_two_causes_is_partial_and_ctrl_c_is_130() -> None:
    mixed = result(failed=[failed("a", NoInputError("a")), failed("b", DataError("b"))]).error()
    assert isinstance(mixed, PartialError)
    stopped = result(done=3, fatal=InterruptedError_("interrupted")).error()
    assert stopped is not None and stopped.exit_code == 130


def test_objects_done_before_this_run_do_not_count_as_landing_now() -> None:
    err = result(done=2, skipped=2, failed=[failed("c", TempFailError("c")), failed("d", TempFailError("d"))]).error()
    assert isinstance(err, TempFailError)
