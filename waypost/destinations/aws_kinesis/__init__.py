"""The `aws_kinesis` destination type."""

from waypost.destinations.aws_kinesis.provider import AwsKinesisProvider

provider = AwsKinesisProvider.from_shared  # the catalog's factory for this type
