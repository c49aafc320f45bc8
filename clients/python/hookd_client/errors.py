"""Errors: an application error N (sent as code -(32000 + N)) becomes an ApiError whose
`number` is N, of a subclass for the common ones; JSON-RPC's own errors are
ProtocolError; a failed HTTP exchange is TransportError."""


class HookdError(Exception):
    """Anything that went wrong talking to hookd."""


class TransportError(HookdError):
    """No JSON-RPC answer: the connection failed, or the answer was not JSON-RPC."""


class ProtocolError(HookdError):
    """A standard JSON-RPC error (-32700 parse error, -32600 … -32603)."""

    def __init__(self, code, message, data=None):
        super().__init__(f"{message} ({code})" + (f": {data}" if data else ""))
        self.code = code
        self.message = message
        self.data = data


class ApiError(HookdError):
    """Application error `number` (CONTRACT: sent as code -(32000 + number))."""

    number = None

    def __init__(self, number, code, message):
        super().__init__(f"{message} (error {number})")
        self.number = number
        self.code = code
        self.message = message


class AccessDenied(ApiError):
    """2: bad credentials, or a role that may not do this."""


class SessionExpired(ApiError):
    """5: the session id is unknown or expired; log in again."""


class InvalidData(ApiError):
    """101: the message says which field is wrong and how."""


class WebhookNotFound(ApiError):
    """103."""


class MerchantNotFound(ApiError):
    """111."""


_BY_NUMBER = {
    2: AccessDenied,
    5: SessionExpired,
    101: InvalidData,
    103: WebhookNotFound,
    111: MerchantNotFound,
}


def error_from(error):
    """The exception for a JSON-RPC `error` member."""
    if not isinstance(error, dict):
        return TransportError(f"malformed error member: {error!r}")
    code = error.get("code")
    message = str(error.get("message", ""))
    if not isinstance(code, int):
        return TransportError(f"error without an integer code: {error!r}")
    # Application errors are -32000 - N; JSON-RPC's own are -32600 and below.
    if -32599 <= code <= -32000:
        number = -code - 32000
        return _BY_NUMBER.get(number, ApiError)(number, code, message)
    return ProtocolError(code, message, error.get("data"))
