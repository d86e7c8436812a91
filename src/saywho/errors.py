"""One exception tree. The CLI maps it to one line and an exit code; the server to
an HTTP status with an OpenAI-shaped body (``status_code`` and ``code`` below)."""

from __future__ import annotations


class SaywhoError(Exception):
    """Base of every error saywho raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class InvalidOptionError(SaywhoError, ValueError):
    """An option or request field has a value saywho cannot use."""

    status_code = 400
    code = "invalid_value"


class AudioDecodeError(SaywhoError):
    """The input is not decodable audio (empty, truncated, not audio...)."""

    status_code = 400
    code = "invalid_audio"


class AudioTooLongError(SaywhoError):
    status_code = 400
    code = "audio_too_long"


class PayloadTooLargeError(SaywhoError):
    status_code = 413
    code = "payload_too_large"


class ModelNotFoundError(SaywhoError):
    """A model name is neither a local directory, a bundled alias, nor reachable."""

    status_code = 404
    code = "model_not_found"


class SpeakerLibraryError(SaywhoError):
    """The speaker library cannot be read or the operation conflicts with it."""

    status_code = 400
    code = "speaker_library_error"


class SpeakerNotFoundError(SpeakerLibraryError):
    status_code = 404
    code = "speaker_not_found"


class NotFoundError(SaywhoError):
    status_code = 404
    code = "not_found"


class BackendUnavailable(SaywhoError):
    """Inference is not available right now (worker crashed, restarting...)."""

    status_code = 503
    code = "backend_unavailable"

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequestsError(SaywhoError):
    """Full: the client should come back after ``retry_after`` seconds (sent as ``Retry-After``)."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: float = 5.0, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class ModelDownloadError(SaywhoError):
    """A model could not be fetched from the hub (offline, refused, bad checksum)."""

    status_code = 502
    code = "model_download_failed"


class InsufficientStorageError(SaywhoError):
    """The disk is (nearly) full: nothing was accepted, nothing was left behind."""

    status_code = 507
    code = "insufficient_storage"


class ConflictError(SaywhoError):
    """The request collides with one already running (two pulls of one model)."""

    status_code = 409
    code = "conflict"
