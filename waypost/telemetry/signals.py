"""Which signals to export, where to, and how: Outpost's rules over the standard variables.

- `OTEL_EXPORTER` (`otlp`, `console`/`stdout`, `none`) applies to every signal unless
  `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` says otherwise for one.
- With OTLP, per-signal endpoints (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, …) and no generic
  `OTEL_EXPORTER_OTLP_ENDPOINT` turn on only the signals that have one.
- The protocol is `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
  `OTEL_PROTOCOL` (Outpost's, default `grpc`).

Endpoints, headers, timeouts and TLS settings themselves are read by the OTLP exporters from the
standard `OTEL_EXPORTER_OTLP_*` variables. Logs are not exported over OTLP (they go to stderr).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from waypost.errors import ConfigError

SIGNALS = ("traces", "metrics")
EXPORTERS = {"otlp": "otlp", "console": "console", "stdout": "console", "none": "none"}
PROTOCOLS = {"grpc": "grpc", "http": "http/protobuf", "http/protobuf": "http/protobuf"}


@dataclass(frozen=True, slots=True)
class SignalExport:
    signal: str  # "traces" or "metrics"
    exporter: str  # "otlp" or "console"
    protocol: str  # "grpc" or "http/protobuf" (OTLP only)


def _choice(table: Mapping[str, str], value: str, name: str) -> str:
    try:
        return table[value.strip().lower()]
    except KeyError:
        raise ConfigError(f"{name} must be one of {', '.join(table)}, not {value!r}") from None


def exports(env: Mapping[str, str], exporter: str, protocol: str) -> list[SignalExport]:
    """The signals to export given the environment and Outpost's `OTEL_EXPORTER`/`OTEL_PROTOCOL`."""
    generic_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    endpoints = {s: env.get(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT", "") for s in SIGNALS}
    only_listed = not generic_endpoint and any(endpoints.values())
    chosen = []
    for signal in SIGNALS:
        own = f"OTEL_{signal.upper()}_EXPORTER"
        kind = _choice(
            EXPORTERS, env.get(own) or exporter, own if env.get(own) else "OTEL_EXPORTER"
        )
        if kind == "none" or (kind == "otlp" and only_listed and not endpoints[signal]):
            continue
        for name in (
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ):
            if env.get(name):
                wire = _choice(PROTOCOLS, env[name], name)
                break
        else:
            wire = _choice(PROTOCOLS, protocol, "OTEL_PROTOCOL")
        chosen.append(SignalExport(signal, kind, wire))
    return chosen
