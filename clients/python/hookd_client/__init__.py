"""hookd's JSON-RPC API over HTTP Basic, and signature checks for receivers.

    from hookd_client import HookdClient, verify_plugin_hmac, verify_standard_webhook
"""

from .client import HookdClient
from .errors import (
    AccessDenied,
    ApiError,
    HookdError,
    InvalidData,
    MerchantNotFound,
    ProtocolError,
    SessionExpired,
    TransportError,
    WebhookNotFound,
)
from .verify import verify_plugin_hmac, verify_standard_webhook

__all__ = [
    "HookdClient",
    "HookdError",
    "ApiError",
    "AccessDenied",
    "SessionExpired",
    "InvalidData",
    "WebhookNotFound",
    "MerchantNotFound",
    "ProtocolError",
    "TransportError",
    "verify_plugin_hmac",
    "verify_standard_webhook",
]
