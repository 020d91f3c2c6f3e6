"""Partner Center's default endpoints and limits, importing nothing.

The clients (`auth`, `client`, `webhooks`) and the settings (`cosell.config`) both read these;
keeping them here lets the settings load without msal, httpx or cryptography.
"""

from __future__ import annotations

DEFAULT_AUTHORITY_HOST = "login.microsoftonline.com"
REFERRALS_BASE_URL = "https://api.partner.microsoft.com/v1.0/engagements"
WEBHOOKS_BASE_URL = "https://api.partnercenter.microsoft.com/webhooks/v1"
MICROSOFT_CERTIFICATE_URL_PREFIX = "https://3psostorageacct.blob.core.windows.net/cert/"
MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: callbacks are a few hundred bytes; more is an attack
