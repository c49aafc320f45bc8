"""A small JSON-RPC client for hookd: every method goes through `call` with HTTP Basic
credentials (CONTRACT §2), so no session has to be kept or renewed."""

import base64
import itertools
import json
import urllib.error
import urllib.request

from .errors import TransportError, error_from


class HookdClient:
    """`HookdClient("https://hooks.example.com", "platform", api_key).call("webhook.list")`."""

    def __init__(self, base_url, username, api_key, timeout=10.0):
        self.endpoint = base_url.rstrip("/") + "/api/jsonrpc"
        token = base64.b64encode(f"{username}:{api_key}".encode()).decode()
        self._auth = "Basic " + token
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, path, *args):
        """Calls `resource.method` with positional `args`; its result, or raises."""
        params = [None, path, list(args)]
        return self._request("call", params)

    def _request(self, method, params):
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": self._auth},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as e:  # 413: still a JSON-RPC error body
            text = e.read()
        except (urllib.error.URLError, OSError) as e:
            raise TransportError(f"no answer from {self.endpoint}: {e}") from e
        try:
            answer = json.loads(text)
        except ValueError as e:
            raise TransportError(f"the answer is not JSON: {text[:200]!r}") from e
        if not isinstance(answer, dict):
            raise TransportError(f"the answer is not a JSON-RPC object: {answer!r}")
        if answer.get("error") is not None:
            raise error_from(answer["error"])
        if "result" not in answer:
            raise TransportError(f"the answer has neither result nor error: {answer!r}")
        return answer["result"]

    # Shorthands for the common methods.

    def webhook_list(self):
        return self.call("webhook.list")

    def webhook_create(self, url, topics, **fields):
        return self.call("webhook.create", dict(fields, url=url, topics=topics))

    def publish(self, topic, message, merchant_code=None, idempotency_key=None):
        options = {}
        if merchant_code is not None:
            options["merchant_code"] = merchant_code
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        return self.call("event.publish", topic, message, options)

    def portal_link(self, merchant_code, ttl=None, read_only=False):
        options = {"merchant_code": merchant_code, "read_only": read_only}
        if ttl is not None:
            options["ttl"] = ttl
        return self.call("portal.link", options)
