"""The `aws_kinesis` destination type."""
