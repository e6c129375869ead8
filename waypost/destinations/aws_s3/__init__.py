"""The `aws_s3` destination type."""

from waypost.destinations.aws_s3.provider import AwsS3Provider

provider = AwsS3Provider.from_shared  # the catalog's factory for this type
