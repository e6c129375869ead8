"""The `aws_sqs` destination type."""
