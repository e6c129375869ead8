"""The `aws_eventbridge` destination type: one PutEvents entry per event.

Outpost's contract does not describe this type; the choices here, documented in instructions.md:
- `Source` is "outpost" and `DetailType` is the event's topic, the two fields EventBridge rules
  most often match on; `Time` is the event's time.
- `Detail` must be a JSON object and entries carry no attributes, so the merged metadata travels
  inside it, in the same envelope as Kinesis records: `{"metadata": {...}, "data": <data>}`.
- PutEvents answers 200 even when it rejects the entry; a rejected entry (FailedEntryCount > 0)
  is a failed attempt with EventBridge's error code and message.
- Success `response_data` is `{"event_id": <EventBridge's id for the entry>}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.destinations.aws.provider import AwsProvider
from waypost.destinations.aws_kinesis.provider import envelope
from waypost.destinations.sending import failed

SOURCE = "outpost"
DEFAULT_BUS = "default"


class AwsEventBridgeProvider(AwsProvider):
    type = "aws_eventbridge"
    package = "waypost.destinations.aws_eventbridge"
    service = "events"

    def target(self, destination: Destination) -> tuple[str, str]:
        region = destination.config.get("region", "")
        bus = destination.config.get("event_bus_name") or DEFAULT_BUS
        if bus.startswith("arn:"):
            return bus, ""
        console = (
            f"https://{region}.console.aws.amazon.com/events/home?region={region}#/eventbus/{bus}"
        )
        return f"{bus} in {region}", console

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        config = destination.config
        entry: dict[str, Any] = {
            "Source": SOURCE,
            "DetailType": event.topic,
            "Detail": envelope(self.metadata(event, destination), event.data).decode("utf-8"),
            "Time": datetime.fromtimestamp(event.time / 1000, UTC),
            "EventBusName": config.get("event_bus_name") or DEFAULT_BUS,
        }
        client = self.client_key(destination, config.get("region", ""), config.get("endpoint", ""))
        outcome = await self.call(destination, client, "put_events", Entries=[entry])
        if isinstance(outcome, DeliveryResult):
            return outcome
        [result] = outcome.get("Entries") or [{}]
        if outcome.get("FailedEntryCount") or "ErrorCode" in result:
            return failed(f"{result.get('ErrorCode', 'Failed')}: {result.get('ErrorMessage', '')}")
        return DeliveryResult("success", "OK", {"event_id": result.get("EventId", "")})
