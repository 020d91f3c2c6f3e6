"""The Salesforce sandbox's Pub/Sub API (gRPC): Change Data Capture events of its change log."""
