"""`outpost serve` and `outpost config`."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import uvloop

from outpost import __version__, recovery_cli
from outpost import config as settings
from outpost.core.timefmt import now_ms
from outpost.errors import ConfigError, OutpostError
from outpost.observability import logs
from outpost.storage.retention import Deleted


def _serve(args: argparse.Namespace) -> int:
    from outpost import bootstrap, services

    try:
        overrides = {"SERVICE": args.service} if args.service else {}
        config = settings.load({**os.environ, **overrides}, config_file=args.config)
        config, generated = settings.with_generated_secrets(config)
        system = bootstrap.build(config)
    except ConfigError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level, config.log_format)
    store = "PostgreSQL" if config.postgres_url else f"SQLite in {config.data_dir}"
    print(
        f"Outpost {__version__} ({config.service or 'all'}) on "
        f"http://{config.host}:{config.port}/api/v1, {store}",
        flush=True,
    )
    if str(Path(config.data_dir) / "api_key") in generated:
        print(f"API key: {config.api_key}  (kept in {config.data_dir}/api_key)", flush=True)
    try:
        uvloop.run(services.run(system))
    except OutpostError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from outpost import bootstrap

    try:
        config, _ = settings.with_generated_secrets(settings.load(config_file=args.config))
        backend = bootstrap.open_backend(replace(config, postgres_migrate_on_start=True))

        async def apply() -> None:
            await backend.open()  # opening applies pending migrations
            await backend.close()

        uvloop.run(apply())
    except OutpostError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    print("migrations applied", flush=True)
    return 0


def _config(args: argparse.Namespace) -> int:
    print(settings.markdown_table(), end="")
    return 0


def _erase_logs(args: argparse.Namespace) -> int:
    """Erase one tenant's events and attempts, or sweep what is past a retention period, now.

    A command rather than an API route: erasing a whole log is an operator's act that Outpost's
    API has no operation for, and it stays off the API key's reach. With PostgreSQL it runs next
    to live servers; the embedded store is one process's, so stop the server first (or use
    `LOG_ERASE_ON_TENANT_DELETE`, which erases inside the server).
    """
    from outpost import bootstrap

    try:
        config, _ = settings.with_generated_secrets(settings.load(config_file=args.config))
        backend = bootstrap.open_backend(config)
        batch = config.log_retention_batch_size

        async def erase() -> Deleted | None:
            await backend.open()
            try:
                if args.tenant:
                    return await backend.erase_tenant_logs(args.tenant, batch)
                cutoff = now_ms() - args.older_than_days * 86_400_000
                return await backend.delete_logs_before(cutoff, batch)
            finally:
                await backend.close()

        deleted = uvloop.run(erase())
    except OutpostError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    if deleted is None:
        print("another process is sweeping right now; try again later", file=sys.stderr)
        return 1
    print(f"deleted {deleted.events} events and {deleted.attempts} attempts", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outpost")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="a .env or YAML settings file")
    serve.add_argument(
        "--service", choices=["all", "api", "delivery"], help="overrides SERVICE (default all)"
    )
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations, then exit")
    migrate.add_argument("--config", help="a .env or YAML settings file")
    migrate.set_defaults(run=_migrate)
    erase = commands.add_parser(
        "erase-logs", help="delete one tenant's events and attempts, or those older than N days"
    )
    erase.add_argument("--config", help="a .env or YAML settings file")
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", help="the tenant whose logs to erase")
    which.add_argument("--older-than-days", type=int, help="delete logs older than this")
    erase.set_defaults(run=_erase_logs)
    show = commands.add_parser("config", help="print every setting with its default (Markdown)")
    show.set_defaults(run=_config)
    recovery_cli.register(commands)  # undelivered, recover, recoveries, send-test (over HTTP)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
