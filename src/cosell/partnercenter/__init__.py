"""The Partner Center side: auth, the Referrals API client, the Webhooks API and callbacks.

- `errors`: one error tree, sorted by what the caller must do (retriable / conflict / terminal),
  and `error_from_response`.
- `models`: the tolerant `Referral` model, enums, `check_transition`, `NewReferral` and the typed
  change set `ReferralChanges` (→ JSON Patch).
- `auth`: msal token providers (refresh token with a rotating store, client credentials, password),
  cached on the injected clock; `RoutingHttpClient` to reach the sandbox's Entra ID.
- `client`: `ReferralsClient` (list with paging, get, create, update) and the shared
  `ApiRequester` (ids, retries honouring Retry-After, 401 → one token refresh).
- `webhooks`: `WebhooksClient` (registration) and `SignatureVerifier` (callbacks, checked before
  they are parsed).

Nothing here imports the sandboxes, the Salesforce side or the CLI (import-linter checks it).
"""
