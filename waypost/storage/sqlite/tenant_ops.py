"""Tenants and destinations: synchronous operations on a connection (run by `Database`)."""

from __future__ import annotations

import sqlite3

from waypost.core.models import Destination, StrMap, Tenant
from waypost.core.paging import Page, PageRequest
from waypost.errors import ConflictError
from waypost.storage import keyset, rows
from waypost.storage.keyset import Where
from waypost.storage.sealing import Sealer

_LIVE_TENANT = "SELECT " + rows.TENANT_COLUMNS + " FROM tenants WHERE id = ? AND deleted_at IS NULL"


def get_tenant(conn: sqlite3.Connection, tenant_id: str) -> Tenant | None:
    row = conn.execute(_LIVE_TENANT, (tenant_id,)).fetchone()
    return rows.tenant(row) if row else None


def upsert_tenant(
    conn: sqlite3.Connection, tenant_id: str, metadata: StrMap | None, now: int
) -> tuple[Tenant, bool]:
    """Replace the metadata of a live tenant, or create it (again, if it was deleted)."""
    existing = get_tenant(conn, tenant_id)
    meta = rows.dump(metadata) if metadata else None
    if existing:
        conn.execute(
            "UPDATE tenants SET metadata = ?, updated_at = ? WHERE id = ?", (meta, now, tenant_id)
        )
        return Tenant(tenant_id, existing.created_at, now, metadata or None), False
    conn.execute(
        "INSERT INTO tenants (id, metadata, created_at, updated_at, deleted_at) "
        "VALUES (?, ?, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, "
        "created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL",
        (tenant_id, meta, now, now),
    )
    return Tenant(tenant_id, now, now, metadata or None), True


def delete_tenant(conn: sqlite3.Connection, tenant_id: str, now: int) -> bool:
    gone = conn.execute(
        "UPDATE tenants SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", (now, tenant_id)
    ).rowcount
    conn.execute(
        "UPDATE destinations SET deleted_at = ? WHERE tenant_id = ? AND deleted_at IS NULL",
        (now, tenant_id),
    )
    return gone > 0


def list_tenants(
    conn: sqlite3.Connection, ids: tuple[str, ...], request: PageRequest
) -> Page[Tenant]:
    where = Where().add("deleted_at IS NULL").any_of("id", ids)
    plan = keyset.plan(
        kind="tnt",
        select="SELECT " + rows.TENANT_COLUMNS + " FROM tenants",
        where=where,
        sort="created_at",
        id_column="id",
        request=request,
    )
    found = conn.execute(plan.sql, plan.params).fetchall()
    page = keyset.page(plan, found, rows.tenant, lambda t: (t.created_at, t.id))
    total = conn.execute(f"SELECT count(*) FROM tenants WHERE {where.sql()}", where.params)
    return Page(page.items, page.next, page.prev, total.fetchone()[0])


def list_destinations(
    conn: sqlite3.Connection, tenant_id: str, sealer: Sealer | None
) -> list[Destination]:
    found = conn.execute(
        "SELECT " + rows.DESTINATION_COLUMNS + " FROM destinations "
        "WHERE tenant_id = ? AND deleted_at IS NULL ORDER BY created_at, id",
        (tenant_id,),
    )
    return [rows.destination(row, sealer) for row in found]


def sealed_key_ids(conn: sqlite3.Connection) -> list[str]:
    """The key ids live credentials are sealed under (`v1:<8 hex>:…`)."""
    found = conn.execute(
        "SELECT DISTINCT substr(credentials, 4, 8) FROM destinations "
        "WHERE deleted_at IS NULL AND substr(credentials, 1, 3) = 'v1:'"
    ).fetchall()
    return [row[0] for row in found]


def reseal_credentials(conn: sqlite3.Connection, sealer: Sealer) -> int:
    """Rewrites live credentials not sealed under the current key (rotation, legacy rows)."""
    found = conn.execute(
        "SELECT id, tenant_id, credentials FROM destinations "
        "WHERE deleted_at IS NULL AND substr(credentials, 1, ?) != ?",
        (len(sealer.prefix), sealer.prefix),
    ).fetchall()
    count = 0
    for row in found:
        sealed = rows.resealed(row, sealer)
        if sealed is not None:
            count += conn.execute(
                "UPDATE destinations SET credentials = ? "
                "WHERE id = ? AND tenant_id = ? AND credentials = ?",
                (sealed, *row),
            ).rowcount
    return count


def create_destination(
    conn: sqlite3.Connection, dest: Destination, limit: int, sealer: Sealer | None
) -> None:
    live = conn.execute(
        "SELECT 1 FROM destinations WHERE tenant_id = ? AND id = ? AND deleted_at IS NULL",
        (dest.tenant_id, dest.id),
    ).fetchone()
    if live:
        raise ConflictError("destination already exists")
    count = conn.execute(
        "SELECT count(*) FROM destinations WHERE tenant_id = ? AND deleted_at IS NULL",
        (dest.tenant_id,),
    ).fetchone()[0]
    if count >= limit:
        raise ConflictError("maximum number of destinations per tenant reached")
    conn.execute(
        "DELETE FROM destinations WHERE tenant_id = ? AND id = ?", (dest.tenant_id, dest.id)
    )
    conn.execute(
        "INSERT INTO destinations (" + rows.DESTINATION_COLUMNS + ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows.destination_values(dest, sealer),
    )


def update_destination(conn: sqlite3.Connection, dest: Destination, sealer: Sealer | None) -> bool:
    values = rows.destination_values(dest, sealer)
    changed = conn.execute(
        "UPDATE destinations SET type = ?, topics = ?, filter = ?, config = ?, credentials = ?, "
        "delivery_metadata = ?, metadata = ?, created_at = ?, updated_at = ?, disabled_at = ? "
        "WHERE id = ? AND tenant_id = ? AND deleted_at IS NULL",
        (*values[2:], dest.id, dest.tenant_id),
    ).rowcount
    return changed > 0


def delete_destination(
    conn: sqlite3.Connection, tenant_id: str, destination_id: str, now: int
) -> bool:
    return (
        conn.execute(
            "UPDATE destinations SET deleted_at = ? "
            "WHERE tenant_id = ? AND id = ? AND deleted_at IS NULL",
            (now, tenant_id, destination_id),
        ).rowcount
        > 0
    )
