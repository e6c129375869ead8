"""Tenants and destinations in PostgreSQL: async functions of a connection (run by `Database`).

The same tables and rules as storage/sqlite/tenant_ops.py. A write to a tenant's destinations
sends a NOTIFY (channels.py) that makes every process forget that tenant's cached destinations.
"""

from __future__ import annotations

from waypost.core.models import Destination, StrMap, Tenant
from waypost.core.paging import Page, PageRequest
from waypost.errors import ConflictError
from waypost.storage import keyset, rows
from waypost.storage.keyset import Where, numbered
from waypost.storage.postgres.channels import DESTINATIONS_CHANNEL, notify
from waypost.storage.postgres.database import Conn, fetch
from waypost.storage.sealing import Sealer


async def get_tenant(conn: Conn, tenant_id: str) -> Tenant | None:
    row = await conn.fetchrow(
        f"SELECT {rows.TENANT_COLUMNS} FROM tenants WHERE id = $1 AND deleted_at IS NULL",
        tenant_id,
    )
    return rows.tenant(row) if row else None


async def upsert_tenant(
    conn: Conn, tenant_id: str, metadata: StrMap | None, now: int
) -> tuple[Tenant, bool]:
    row = await conn.fetchrow(
        "INSERT INTO tenants (id, metadata, created_at, updated_at) VALUES ($1, $2, $3, $3) "
        "ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, "
        "updated_at = excluded.updated_at, "
        "created_at = CASE WHEN tenants.deleted_at IS NULL THEN tenants.created_at "
        "ELSE excluded.created_at END, deleted_at = NULL "
        "RETURNING created_at, (xmax = 0 OR created_at = $3) AS created",
        tenant_id,
        rows.dump(metadata) if metadata else None,
        now,
    )
    assert row is not None
    return Tenant(tenant_id, row[0], now, metadata or None), bool(row[1])


async def delete_tenant(conn: Conn, tenant_id: str, now: int) -> bool:
    gone = await conn.execute(
        "UPDATE tenants SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL", now, tenant_id
    )
    await conn.execute(
        "UPDATE destinations SET deleted_at = $1 WHERE tenant_id = $2 AND deleted_at IS NULL",
        now,
        tenant_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, tenant_id)
    return gone != "UPDATE 0"


async def list_tenants(conn: Conn, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
    where = Where().add("deleted_at IS NULL").any_of("id", ids)
    plan = keyset.plan(
        kind="tnt",
        select=f"SELECT {rows.TENANT_COLUMNS} FROM tenants",
        where=where,
        sort="created_at",
        id_column="id",
        request=request,
    )
    page = keyset.page(
        plan, await fetch(conn, plan.sql, plan.params), rows.tenant, lambda t: (t.created_at, t.id)
    )
    total = await conn.fetchval(
        numbered(f"SELECT count(*) FROM tenants WHERE {where.sql()}"), *where.params
    )
    return Page(page.items, page.next, page.prev, int(total))


async def list_destinations(conn: Conn, tenant_id: str, sealer: Sealer | None) -> list[Destination]:
    found = await conn.fetch(
        f"SELECT {rows.DESTINATION_COLUMNS} FROM destinations "
        "WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        tenant_id,
    )
    return [rows.destination(row, sealer) for row in found]


async def sealed_key_ids(conn: Conn) -> list[str]:
    """The key ids live credentials are sealed under (`v1:<8 hex>:…`)."""
    found = await conn.fetch(
        "SELECT DISTINCT substr(credentials, 4, 8) FROM destinations "
        "WHERE deleted_at IS NULL AND left(credentials, 3) = 'v1:'"
    )
    return [row[0] for row in found]


async def reseal_credentials(conn: Conn, sealer: Sealer) -> int:
    """Rewrites live credentials not sealed under the current key (rotation, legacy rows).

    Compare-and-set per row, so processes starting together, or a concurrent update, are safe;
    the plaintext is unchanged, so no cache needs invalidating.
    """
    found = await conn.fetch(
        "SELECT id, tenant_id, credentials FROM destinations "
        "WHERE deleted_at IS NULL AND left(credentials, $1) <> $2",
        len(sealer.prefix),
        sealer.prefix,
    )
    count = 0
    for row in found:
        sealed = rows.resealed(tuple(row), sealer)
        if sealed is not None:
            status = await conn.execute(
                "UPDATE destinations SET credentials = $1 "
                "WHERE id = $2 AND tenant_id = $3 AND credentials = $4",
                sealed,
                *row,
            )
            count += status != "UPDATE 0"
    return count


async def create_destination(
    conn: Conn, dest: Destination, limit: int, sealer: Sealer | None
) -> None:
    # Serialise creations per tenant so that the limit holds across processes.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", dest.tenant_id)
    live = await conn.fetch(
        "SELECT id FROM destinations WHERE tenant_id = $1 AND deleted_at IS NULL", dest.tenant_id
    )
    if any(r[0] == dest.id for r in live):
        raise ConflictError("destination already exists")
    if len(live) >= limit:
        raise ConflictError("maximum number of destinations per tenant reached")
    await conn.execute(
        "DELETE FROM destinations WHERE tenant_id = $1 AND id = $2", dest.tenant_id, dest.id
    )
    await conn.execute(
        f"INSERT INTO destinations ({rows.DESTINATION_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        *rows.destination_values(dest, sealer),
    )
    await notify(conn, DESTINATIONS_CHANNEL, dest.tenant_id)


async def update_destination(conn: Conn, dest: Destination, sealer: Sealer | None) -> bool:
    values = rows.destination_values(dest, sealer)
    status = await conn.execute(
        "UPDATE destinations SET type = $1, topics = $2, filter = $3, config = $4, "
        "credentials = $5, delivery_metadata = $6, metadata = $7, created_at = $8, "
        "updated_at = $9, disabled_at = $10 "
        "WHERE id = $11 AND tenant_id = $12 AND deleted_at IS NULL",
        *values[2:],
        dest.id,
        dest.tenant_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, dest.tenant_id)
    return status != "UPDATE 0"


async def delete_destination(conn: Conn, tenant_id: str, destination_id: str, now: int) -> bool:
    status = await conn.execute(
        "UPDATE destinations SET deleted_at = $1 "
        "WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
        now,
        tenant_id,
        destination_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, tenant_id)
    return status != "UPDATE 0"
