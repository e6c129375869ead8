"""The `aws_s3` destination type."""
