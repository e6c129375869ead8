"""Which caller-given ids the API accepts: those it can address afterwards.

Tenant, destination and event ids end up as one path segment (`/tenants/{id}`) and as query
values (`?event_id=`). A `/` in one splits the segment, so such a destination was created but
could never be read, updated or deleted (and kept its slot of MAX_DESTINATIONS_PER_TENANT);
`.` and `..` are removed by clients resolving the URL; control characters and very long ids do
not survive logs and request-head limits. So a given id is 1 to 255 characters among letters,
digits and `-_.~:@` (no percent-encoding needed anywhere), and not `.` or `..`. Generated ids
(UUIDs, nanoids) already are. Outpost takes any string; ids already stored are not checked again.
"""

from __future__ import annotations

import re

from waypost.errors import ValidationError

MAX_LENGTH = 255
_ADDRESSABLE = re.compile(rf"[A-Za-z0-9._~:@-]{{1,{MAX_LENGTH}}}")
RULE = f"1 to {MAX_LENGTH} of A-Z a-z 0-9 - _ . ~ : @, not . or .."


def addressable(value: str) -> bool:
    return _ADDRESSABLE.fullmatch(value) is not None and value not in (".", "..")


def check(field: str, value: str) -> None:
    """422 `validation error` naming the rule unless `value` is an addressable id."""
    if not addressable(value):
        raise ValidationError([f"{field} failed pattern validation ({RULE})"])
