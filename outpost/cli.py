"""`outpost serve` and `outpost config`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import uvloop

from outpost import __version__
from outpost import config as settings
from outpost.errors import ConfigError, OutpostError

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


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
    logging.basicConfig(
        level=_LEVELS.get(config.log_level.lower(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
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
    show = commands.add_parser("config", help="print every setting with its default (Markdown)")
    show.set_defaults(run=_config)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
