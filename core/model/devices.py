"""Devices and their samples as they cross the wire (no torch): what the devices
panel draws. MESSAGES lists the types the protocol may carry; REPLY_TO pairs each
request with its reply."""
from __future__ import annotations

MESSAGES: tuple = ()
REPLY_TO: dict = {}
