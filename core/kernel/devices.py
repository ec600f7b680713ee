"""Kernel side of the devices panel."""
from __future__ import annotations


def handlers(endpoint) -> dict:
    """{request type: handler(request) -> reply} for serve.Endpoint."""
    return {}
