"""The server side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 4616, RFC 5802/7677), for the Kafka
test front (`kafka_broker.py`). The client side under test is aiokafka's own, which checks the
server's signature, so an exchange that completes proves both sides computed the same proofs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 4096
HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ["PLAIN", *HASHES]


class LoginRefused(Exception):
    pass


class ServerSession:
    """One login attempt: feed each client message to `step`, which returns the reply.
    `done` turns true once the login succeeded; `LoginRefused` ends a failed one."""

    def __init__(self, mechanism: str, users: dict[str, str]) -> None:
        self.mechanism = mechanism
        self.users = users
        self.done = False
        self._salted = b""
        self._auth_start = ""
        self._nonce = ""  # set by the client's first message

    def step(self, message: bytes) -> bytes:
        if self.mechanism == "PLAIN":
            return self._plain(message)
        if not self._nonce:
            return self._scram_first(message.decode())
        return self._scram_final(message.decode())

    def _plain(self, message: bytes) -> bytes:
        _authzid, username, password = message.split(b"\0")
        if self.users.get(username.decode()) != password.decode():
            raise LoginRefused(f"PLAIN login refused for {username.decode()!r}")
        self.done = True
        return b""

    def _scram_first(self, message: str) -> bytes:
        bare = message.split(",", 2)[2]  # drop the gs2 header "n,,"
        fields = dict(part.split("=", 1) for part in bare.split(","))
        username, client_nonce = fields["n"], fields["r"]
        if username not in self.users:
            raise LoginRefused(f"unknown user {username!r}")
        digest = HASHES[self.mechanism]
        salt = secrets.token_bytes(16)
        nonce = client_nonce + secrets.token_urlsafe(18)
        salted = hashlib.pbkdf2_hmac(digest, self.users[username].encode(), salt, ITERATIONS)
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={ITERATIONS}"
        self._salted, self._auth_start, self._nonce = salted, f"{bare},{server_first}", nonce
        return server_first.encode()

    def _scram_final(self, message: str) -> bytes:
        without_proof, _, proof_field = message.rpartition(",p=")
        fields = dict(part.split("=", 1) for part in without_proof.split(","))
        if fields.get("r") != self._nonce:
            raise LoginRefused("nonce mismatch")
        digest = HASHES[self.mechanism]
        auth_message = f"{self._auth_start},{without_proof}".encode()
        client_key = _hmac(digest, self._salted, b"Client Key")
        stored_key = hashlib.new(digest, client_key).digest()
        client_signature = _hmac(digest, stored_key, auth_message)
        proof = base64.b64decode(proof_field)
        recovered = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hashlib.new(digest, recovered).digest(), stored_key):
            raise LoginRefused("wrong password")
        server_key = _hmac(digest, self._salted, b"Server Key")
        self.done = True
        return b"v=" + base64.b64encode(_hmac(digest, server_key, auth_message))


def _hmac(digest: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, digest).digest()
