"""The `aws_eventbridge` destination type."""

from waypost.destinations.aws_eventbridge.provider import AwsEventBridgeProvider

provider = AwsEventBridgeProvider.from_shared  # the catalog's factory for this type
