"""Checking a delivery's signatures on the receiving side (CONTRACT §4): give the raw body
bytes exactly as received, never a re-serialised copy."""

import base64
import hashlib
import hmac
import time


def _secret_bytes(secret):
    """The webhook's secret_key as bytes; a `whsec_` secret is decoded from base64."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def _header(headers, name):
    """A header by name, whatever its case (a dict, or an email.message / http headers)."""
    if hasattr(headers, "get_all"):
        values = headers.get_all(name) or []
        return values[0] if values else None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def verify_plugin_hmac(body, signature, secret):
    """X-Plugin-Hmac-Sha256: base64(HMAC-SHA256(secret, body)), compared in constant time.
    During a secret rotation check X-Plugin-Hmac-Sha256-Previous with the old secret too."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(_secret_bytes(secret), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.strip())


def verify_standard_webhook(body, headers, secret, tolerance=300, now=None):
    """Standard Webhooks v1: webhook-signature holds space-separated `v1,<base64>` entries,
    each HMAC-SHA256 of `id.timestamp.body`; true when one matches and the timestamp is
    within `tolerance` seconds of `now`."""
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not msg_id or not stamp or not signatures:
        return False
    try:
        sent_at = int(stamp)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        return False
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()).decode()
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value):
            return True
    return False
