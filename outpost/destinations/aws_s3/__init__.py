"""The `aws_s3` destination type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.aws.clients import settings_from
from outpost.destinations.aws_s3.provider import AwsS3Provider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> AwsS3Provider:
    return AwsS3Provider(settings_from(shared.config, shared.guard))
