"""The two kinds of failure the service reports on purpose.

`ServeError` stops the command with a one-line message (exit status 2) instead
of a traceback; `RequestError` becomes an HTTP error reply with a JSON body.
"""

from __future__ import annotations


class ServeError(Exception):
    """A startup problem the user can fix: bad flag, missing model, missing extra."""


class RequestError(Exception):
    """A client mistake, answered with `status` and an OpenAI-style error body."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.param = param

    def to_json(self) -> dict[str, object]:
        """The body every error reply uses (the shape the OpenAI SDK parses)."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": None,
            }
        }


def error_payload(
    path: str, message: str, status: int, error_type: str = "invalid_request_error"
) -> dict[str, object]:
    """The error body of the route family: Ollama's `{"error": str}` under /api/, else OpenAI's."""
    if path.startswith("/api/"):
        return {"error": message}
    return RequestError(message, status, error_type=error_type).to_json()
