"""`DELETE /tenants/{tenant_id}` with `LOG_ERASE_ON_TENANT_DELETE`: the tenant's logs go too.

Opt-in, because Outpost keeps a deleted tenant's logs (they age out with retention). The erase
runs before the answer, in bounded batches (storage/retention.py), so a 200 means the events
and attempts are gone, except events whose deliveries were still queued (they are kept for the
delivery; `waypost erase-logs --tenant` removes them once it is done).
"""

from __future__ import annotations

from starlette.requests import Request

from waypost.api.context import Context
from waypost.api.handlers import tenants
from waypost.api.responses import JSON


async def delete_tenant(request: Request, ctx: Context) -> JSON:
    tenant_id = ctx.path_tenant.id
    response = await tenants.delete(request, ctx)
    store = ctx.services.retention
    config = ctx.services.config
    if config.log_erase_on_tenant_delete and store is not None:
        await store.erase_tenant_logs(tenant_id, config.log_retention_batch_size)
    return response
