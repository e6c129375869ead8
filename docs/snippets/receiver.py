"""A webhook endpoint that checks Outpost signatures (Python standard library only).

Run it with the destination's secret: WEBHOOK_SECRET=whsec_... PORT=8000 python receiver.py
"""

import hashlib
import hmac
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"].encode()  # the whole secret, "whsec_" included


def signature_ok(body: bytes, header: str) -> bool:
    """True when one of the header's signatures is the HMAC-SHA256 of the body."""
    if not header.startswith("v0="):
        return False
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    # Two signatures (comma-separated) while a secret rotation is in its grace period.
    return any(hmac.compare_digest(expected, sig.strip()) for sig in header[3:].split(","))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # raw bytes
        if not signature_ok(body, self.headers.get("x-outpost-signature", "")):
            self.send_response(401)  # a failed attempt: never act on an unsigned request
            self.end_headers()
            return
        event_id = self.headers["x-outpost-event-id"]  # the same on every retry: dedupe on it
        topic = self.headers["x-outpost-topic"]
        data = json.loads(body)
        print(f"verified {event_id} {topic} {json.dumps(data)}", flush=True)
        self.send_response(200)
        self.end_headers()


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
