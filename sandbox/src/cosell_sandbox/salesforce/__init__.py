"""A local emulator of the Salesforce REST API, OAuth and SOAP login.

Entry point: `app.SalesforceSandbox` (a FastAPI app per emulated org) and `command` (the
`cosell sandbox salesforce` CLI). The pieces:

- `schema` / `orgschema` / `standard_objects` / `describe`: the org's objects and fields;
- `identity` (+ `identity_keys`, `soap_login`): token endpoint, SOAP login, sessions;
- `ids`, `values`: record ids with their checksum, wire formats of dates and datetimes;
- `store`: records, validation, system fields, transactions with rollback;
- `rest`, `composite`: the `/services/data/vNN.N/...` resources;
- `soql`: the query language, over the store;
- `changelog`: CDC-shaped change events; `limits`: the rolling daily API counter;
- `control`: the test-only control API; `persistence`: SQLite across restarts.
"""
