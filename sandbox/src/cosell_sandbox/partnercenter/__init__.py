"""A local emulator of Partner Center's Referrals API, Webhooks API and Entra ID token endpoint."""
