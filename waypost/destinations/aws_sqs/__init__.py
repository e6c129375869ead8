"""The `aws_sqs` destination type."""

from waypost.destinations.aws_sqs.provider import AwsSqsProvider

provider = AwsSqsProvider.from_shared  # the catalog's factory for this type
