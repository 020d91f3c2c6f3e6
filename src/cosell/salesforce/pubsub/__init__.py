"""Salesforce Change Data Capture over the Pub/Sub API (gRPC + Avro): `client`, `events`."""
