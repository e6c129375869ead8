"""`waypost serve`, `config`, `migrate`, `erase-logs`, `backup` and `restore`; the recovery
commands (`undelivered`, `recover`, `recoveries`, `send-test`) are in recovery_cli.py."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop

from waypost import __version__, recovery_cli
from waypost import config as settings
from waypost.core.timefmt import now_ms
from waypost.errors import ConfigError, OutpostError
from waypost.storage.retention import Deleted
from waypost.telemetry import logs

log = logging.getLogger("waypost")


def _serve(args: argparse.Namespace) -> int:
    from waypost.runner import server

    warnings: list[str] = []
    try:
        overrides = {"SERVICE": args.service} if args.service else {}
        config = settings.load({**os.environ, **overrides}, args.config, warnings)
        config, generated = settings.with_generated_secrets(config)
        served = server.build(config)
    except OutpostError as exc:
        return _refuse(exc)
    logs.configure(config.log_level, config.log_format)
    for warning in warnings:
        log.warning("%s", warning)
    _banner(config, generated)
    try:
        uvloop.run(server.run(served))
    except OutpostError as exc:
        return _refuse(exc)
    except Exception as exc:  # a bug: the operator's line first, then the traceback in the log
        print(f"waypost: stopped by an unexpected error: {exc!r}", file=sys.stderr, flush=True)
        log.exception("stopped by an unexpected error")
        return 1
    return 0


def _refuse(exc: BaseException) -> int:
    """A start-up refusal: one line on stderr naming the problem and its fix; exit status 2."""
    print(f"waypost: {exc}", file=sys.stderr, flush=True)
    return 2


def _banner(config: settings.Config, generated: list[str]) -> None:
    """What is starting, in LOG_FORMAT; the API key only when it was generated just now."""
    store = "PostgreSQL" if config.postgres_url else f"SQLite in {config.data_dir}"
    url = f"http://{config.host}:{config.port}/api/v1"
    key_file = str(Path(config.data_dir) / "api_key")
    new_key = config.api_key if key_file in generated else None
    if config.log_format == "json":
        fields: dict[str, object] = {
            "version": __version__,
            "service": config.service or "all",
            "url": url,
            "store": "postgres" if config.postgres_url else "sqlite",
        }
        if new_key:
            fields["api_key"] = new_key
            fields["api_key_file"] = key_file
        record = logging.LogRecord("waypost", logging.INFO, "", 0, "starting", None, None)
        record.__dict__.update(fields)
        print(logs.JsonFormatter().format(record), flush=True)
        return
    print(f"Outpost {__version__} ({config.service or 'all'}) on {url}, {store}", flush=True)
    if new_key:
        print(f"API key: {new_key}  (generated; kept in {key_file})", flush=True)


def _migrate(args: argparse.Namespace) -> int:
    from waypost import bootstrap

    try:
        config, _ = settings.with_generated_secrets(settings.load(config_file=args.config))
        backend = bootstrap.open_backend(replace(config, postgres_migrate_on_start=True))

        async def apply() -> None:
            await backend.open()  # opening applies pending migrations
            await backend.close()

        uvloop.run(apply())
    except OutpostError as exc:
        print(f"waypost: {exc}", file=sys.stderr)
        return 2
    print("migrations applied", flush=True)
    return 0


def _config(args: argparse.Namespace) -> int:
    if not args.check:
        print(settings.markdown_table(), end="")
        return 0
    return _config_check(args)


def _config_check(args: argparse.Namespace) -> int:
    """The effective settings (secrets masked), then every problem and doubt; 2 if any problem."""
    from waypost import bootstrap

    report = settings.inspect(config_file=args.config)
    if not report.problems:
        try:
            bootstrap.check(report.config)
        except OutpostError as exc:
            report.problems.append(str(exc))
    print(f"# settings file: {report.file or 'none'}")
    print(settings.effective_settings(report), end="")
    for warning in report.warnings:
        print(f"warning: {warning}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("ok" if not report.problems else f"{len(report.problems)} problem(s)", flush=True)
    return 2 if report.problems else 0


def _erase_logs(args: argparse.Namespace) -> int:
    """Erase one tenant's events and attempts, or sweep what is past a retention period, now.

    A command rather than an API route: erasing a whole log is an operator's act that Outpost's
    API has no operation for, and it stays off the API key's reach. With PostgreSQL it runs next
    to live servers; the embedded store is one process's, so stop the server first (or use
    `LOG_ERASE_ON_TENANT_DELETE`, which erases inside the server).
    """
    from waypost import bootstrap

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
        print(f"waypost: {exc}", file=sys.stderr)
        return 2
    if deleted is None:
        print("another process is sweeping right now; try again later", file=sys.stderr)
        return 1
    print(f"deleted {deleted.events} events and {deleted.attempts} attempts", flush=True)
    return 0


def _backup(args: argparse.Namespace) -> int:
    """A consistent copy of the embedded store and its secret files, beside a running server."""
    from waypost import backup

    try:
        config = settings.load(config_file=args.config)
        if config.postgres_url:
            raise ConfigError(
                "waypost backup copies the embedded store; with POSTGRES_URL use pg_dump and "
                "keep AES_ENCRYPTION_SECRET, API_KEY and API_JWT_SECRET with it "
                "(docs/backup-restore.md)"
            )
        data_dir = Path(args.data_dir or config.data_dir)
        summary = backup.backup(data_dir, Path(args.dest))
    except OutpostError as exc:
        return _refuse(exc)
    print(
        f"backed up {data_dir / backup.DATABASE} (schema {summary.schema}, {summary.events} "
        f"events, {summary.tasks} pending deliveries) and {', '.join(summary.files[1:]) or 'no'} "
        f"secret files to {args.dest}",
        flush=True,
    )
    if config.aes_encryption_secret and "aes_encryption_secret" not in summary.files:
        print(
            "note: AES_ENCRYPTION_SECRET comes from your settings, not the data folder: keep it "
            "with this backup",
            flush=True,
        )
    return 0


def _restore(args: argparse.Namespace) -> int:
    """Check a backup whole, then put it in place as a data folder."""
    from waypost import backup

    try:
        data_dir = Path(args.data_dir or settings.load(config_file=args.config).data_dir)
        manifest, aside = backup.restore(Path(args.src), data_dir, force=args.force)
    except OutpostError as exc:
        return _refuse(exc)
    if aside is not None:
        print(f"set the former contents of {data_dir} aside in {aside}", flush=True)
    print(
        f"restored the backup of {manifest['created_at']} (version {manifest['outpost']}, schema "
        f"{manifest['schema']}) into {data_dir}; start with OUTPOST_DATA_DIR={data_dir}",
        flush=True,
    )
    if "warning" in manifest:
        print(f"note: {manifest['warning']}", flush=True)
    return 0


def _add_backup_commands(commands: Any) -> None:
    take = commands.add_parser(
        "backup", help="copy the embedded store and its secrets consistently, even while serving"
    )
    take.add_argument("dest", help="a new (or empty) folder to write the backup into")
    take.add_argument("--config", help="a .env or YAML settings file")
    take.add_argument("--data-dir", help="the data folder (default: OUTPOST_DATA_DIR)")
    take.set_defaults(run=_backup)
    put = commands.add_parser("restore", help="check a backup, then make it a data folder")
    put.add_argument("src", help="a folder written by `waypost backup`")
    put.add_argument(
        "data_dir", nargs="?", help="the data folder to create (default: OUTPOST_DATA_DIR)"
    )
    put.add_argument("--config", help="a .env or YAML settings file")
    put.add_argument(
        "--force", action="store_true", help="set a non-empty data folder aside (renamed)"
    )
    put.set_defaults(run=_restore)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="waypost")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="a .env or YAML settings file")
    services = [choice for choice in settings.choices("service") if choice]
    serve.add_argument("--service", choices=services, help="overrides SERVICE (default all)")
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
    show.add_argument("--config", help="a .env or YAML settings file (with --check)")
    show.add_argument(
        "--check",
        action="store_true",
        help="print the effective settings (secrets masked) and every problem",
    )
    show.set_defaults(run=_config)
    _add_backup_commands(commands)
    recovery_cli.register(commands)  # undelivered, recover, recoveries, send-test (over HTTP)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
