"""One exception root for s3mpu, and the one place that turns errors into exit codes.

Every failure a user can meet is an :class:`S3mpuError` subclass carrying its sysexits-style
code (the same numbers s3cmd uses, so scripts written for s3cmd read them the same) and a
``hint``: the next thing to do, printed after the message.  Library code raises these; only
the CLI turns them into ``sys.exit`` (see :func:`exit_code_for`).
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_GENERAL = 1
EXIT_PARTIAL = 2
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_TEMPFAIL = 75
EXIT_ACCESSDENIED = 77
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130


class S3mpuError(Exception):
    """Root of every error s3mpu reports to a user.

    ``message`` says what happened, ``hint`` what to do next (may be empty).
    """

    exit_code: int = EXIT_GENERAL

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one or two lines, never a traceback
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class UsageError(S3mpuError):
    """Bad arguments: a value that cannot be parsed or combinations that make no sense."""

    exit_code = EXIT_USAGE


class DataError(S3mpuError):
    """The data is wrong: file does not fit the manifest, malformed manifest, integrity mismatch."""

    exit_code = EXIT_DATAERR


class ManifestError(DataError):
    """A manifest that fails validation; ``field`` names the offending JSON path."""

    def __init__(self, message: str, field: str = "", hint: str = "") -> None:
        super().__init__(message, hint or "Ask the admin for a fresh copy of the manifest (s3mpu mint).")
        self.field = field


class NoInputError(S3mpuError):
    """A file or manifest is missing or unreadable."""

    exit_code = EXIT_NOINPUT


class TempFailError(S3mpuError):
    """Network or relay unreachable, or 5xx after retries: retrying later may work."""

    exit_code = EXIT_TEMPFAIL


class AccessDeniedError(S3mpuError):
    """A presigned URL expired or was refused, or the relay refused the token."""

    exit_code = EXIT_ACCESSDENIED


class ConfigError(S3mpuError):
    """Configuration or credential problem."""

    exit_code = EXIT_CONFIG


class UnsupportedError(ConfigError):
    """The S3 server does not implement an operation (``NotImplemented``, ``MethodNotAllowed``).

    Not a temporary failure: retrying cannot help, so it is never exit 75. It is a configuration
    matter (exit 78): this server cannot serve that s3mpu feature.
    """


class PartialError(S3mpuError):
    """Some parts failed after retries; re-running the same command resumes."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, hint: str = "", failed: list[int] | None = None) -> None:
        super().__init__(message, hint)
        self.failed = failed or []


class InterruptedError_(S3mpuError):
    """The user pressed Ctrl-C; state is consistent and a re-run resumes."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(exc: BaseException) -> int:
    """Map any exception to the process exit status (the only such mapping in s3mpu)."""
    if isinstance(exc, S3mpuError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return EXIT_NOINPUT
    return EXIT_GENERAL
