"""The client against a live hookd: users from the CLI, a webhook pointing at a receiver
of ours, a publish, and the delivery's signatures checked with the client's verifier
(and a tampered body refused); typed errors recover N from the code."""

import base64
import json

import pytest

from hookd_client import (
    AccessDenied,
    HookdClient,
    InvalidData,
    MerchantNotFound,
    ProtocolError,
    WebhookNotFound,
    verify_plugin_hmac,
    verify_standard_webhook,
)


def test_publish_deliver_and_verify_signatures(hookd, receiver):
    # Publishing still needs an admin key here (the publisher role lands separately).
    admin_key = hookd.user_add("platform", "--admin")
    shop_key = hookd.user_add("shop-user", "--merchant", "shop1")
    shop = HookdClient(hookd.base_url, "shop-user", shop_key)
    admin = HookdClient(hookd.base_url, "platform", admin_key)

    assert shop.webhook_create(receiver.url, "order:created") is True
    (hook,) = shop.webhook_list()
    assert hook["url"] == receiver.url
    secret = hook["secret_key"]

    published = admin.publish("order:created", {"order_id": 42}, merchant_code="shop1")
    assert published["payloads"] == 1

    headers, body = receiver.next()
    assert json.loads(body)["message"]["order_id"] == 42
    assert verify_plugin_hmac(body, headers["X-Plugin-Hmac-Sha256"], secret)
    assert verify_standard_webhook(body, headers, secret)
    whsec = "whsec_" + base64.b64encode(secret.encode()).decode()
    assert verify_standard_webhook(body, headers, whsec), "the whsec_ form of the secret too"

    # Negative checks: a tampered body, a wrong secret, a stale timestamp.
    tampered = body.replace(b"42", b"43")
    assert tampered != body
    assert not verify_plugin_hmac(tampered, headers["X-Plugin-Hmac-Sha256"], secret)
    assert not verify_standard_webhook(tampered, headers, secret)
    assert not verify_plugin_hmac(body, headers["X-Plugin-Hmac-Sha256"], secret + "x")
    stamp = int(headers["webhook-timestamp"])
    assert not verify_standard_webhook(body, headers, secret, now=stamp + 3600)

    # The official Standard Webhooks library agrees, where it is installed.
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return
    Webhook(whsec).verify(body, {k.lower(): v for k, v in headers.items()})


def test_errors_are_typed_with_their_number(hookd):
    admin_key = hookd.user_add("platform", "--admin")
    shop_key = hookd.user_add("shop-user", "--merchant", "shop1")
    admin = HookdClient(hookd.base_url, "platform", admin_key)
    shop = HookdClient(hookd.base_url, "shop-user", shop_key)

    with pytest.raises(AccessDenied) as denied:
        HookdClient(hookd.base_url, "platform", "wrong-key").webhook_list()
    assert denied.value.number == 2 and denied.value.code == -32002

    with pytest.raises(InvalidData) as invalid:
        shop.webhook_create("not a url", "order:created")
    assert invalid.value.number == 101
    assert "url" in invalid.value.message

    with pytest.raises(WebhookNotFound):
        shop.call("webhook.delete", 999999)

    with pytest.raises(MerchantNotFound) as unknown:
        admin.portal_link("no-such-shop")
    assert unknown.value.number == 111

    with pytest.raises(AccessDenied):
        shop.portal_link("shop1")

    link = admin.portal_link("shop1", ttl="5m", read_only=True)
    assert "/console/portal/" in link["url"] and link["expires_at"]

    with pytest.raises(ProtocolError) as protocol:
        admin._request("no.such.method", [])
    assert protocol.value.code == -32601
