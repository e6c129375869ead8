"""`outpost serve` and `outpost config`."""

from __future__ import annotations

import argparse
import logging
import sys

import uvloop

from outpost import __version__
from outpost import config as settings
from outpost.errors import ConfigError

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def _serve(args: argparse.Namespace) -> int:
    from outpost import bootstrap, services

    try:
        config = settings.load(config_file=args.config)
        config, generated = settings.with_generated_secrets(config)
        system = bootstrap.build(config)
    except ConfigError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=_LEVELS.get(config.log_level.lower(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    print(
        f"Outpost {__version__} on http://{config.host}:{config.port}/api/v1 "
        f"(data in {config.data_dir})",
        flush=True,
    )
    if generated:
        print(f"API key: {config.api_key}  (kept in {config.data_dir}/api_key)", flush=True)
    try:
        uvloop.run(services.run(system))
    except ConfigError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
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
    serve.set_defaults(run=_serve)
    show = commands.add_parser("config", help="print every setting with its default (Markdown)")
    show.set_defaults(run=_config)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
