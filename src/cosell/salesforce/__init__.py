"""The Salesforce side: auth, the REST client, the schema cache and our metadata."""
