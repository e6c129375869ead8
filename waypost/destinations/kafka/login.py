"""What a Kafka producer connects with: the brokers, the SASL login and TLS (no aiokafka here,
so that validating a destination does not import it)."""

from __future__ import annotations

from dataclasses import dataclass

SASL_MECHANISMS = {
    "plain": "PLAIN",
    "scram-sha-256": "SCRAM-SHA-256",
    "scram-sha-512": "SCRAM-SHA-512",
}


@dataclass(frozen=True, slots=True)
class ClusterLogin:
    brokers: tuple[str, ...]
    mechanism: str  # one of SASL_MECHANISMS, or "" for none
    username: str
    password: str
    tls: bool

    def security_protocol(self) -> str:
        if self.mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    def sasl(self) -> dict[str, str | None]:
        if not self.mechanism:
            return {}
        return {
            "sasl_mechanism": SASL_MECHANISMS[self.mechanism],
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


def host_port(broker: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare host (port 9092, Kafka's default)."""
    host, colon, port = broker.rpartition(":")
    if not colon or not port.isdigit() or (host.count(":") and not host.endswith("]")):
        return broker.strip("[]"), 9092
    return host.strip("[]"), int(port)
