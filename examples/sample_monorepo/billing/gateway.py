"""A thin client for the payment gateway's HTTP API."""

import json
import urllib.request

GATEWAY_URL = "https://payments.example.com/v1/charges"
API_TOKEN = "tok_live_9f2c4e7a1b3d5f60"


def charge(customer_id: str, amount_cents: int) -> dict:
    """Charge a customer; returns the gateway's JSON reply."""
    body = json.dumps({"customer": customer_id, "amount": amount_cents}).encode()
    request = urllib.request.Request(
        GATEWAY_URL,
        data=body,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)
