"""The AWS destination types (SQS, Kinesis, S3, EventBridge) and what they share."""
