"""Who is calling: the admin (API key) or one tenant (HS256 JWT issued by this server), contract.md
§1.2."""

from __future__ import annotations

import hmac
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import jwt
from jwt.warnings import InsecureKeyLengthWarning

ISSUER = "outpost"
TOKEN_LIFETIME_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Caller:
    admin: bool
    tenant_id: str | None = None  # the JWT's tenant; None for the admin


class Unauthorized(Exception):
    pass


@contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    # PyJWT warns on every call when API_JWT_SECRET is under 32 bytes; Outpost accepts any secret,
    # and the operator chose it. The generated default is long enough.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield


class Authenticator:
    def __init__(self, api_key: str, jwt_secret: str, deployment_id: str = "") -> None:
        self._key = api_key.encode()
        self._secret = jwt_secret
        self._deployment_id = deployment_id

    def caller(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized
        token = authorization[len("Bearer ") :]
        if not token:
            raise Unauthorized
        if hmac.compare_digest(token.encode(), self._key):
            return Caller(admin=True)
        return Caller(admin=False, tenant_id=self._tenant_of(token))

    def _tenant_of(self, token: str) -> str:
        try:
            with _short_secrets_allowed():
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    issuer=ISSUER,
                    options={"require": ["exp", "sub", "iss"]},
                )
        except jwt.PyJWTError as exc:
            raise Unauthorized from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthorized
        return subject

    def issue(self, tenant_id: str) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "sub": tenant_id,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        if self._deployment_id:
            claims["deployment_id"] = self._deployment_id
        with _short_secrets_allowed():
            return jwt.encode(claims, self._secret, algorithm="HS256")
