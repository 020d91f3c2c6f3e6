"""Salesforce's default login host and API version, importing nothing.

The clients (`auth`, `client`) and the settings (`cosell.config`) both read these; keeping them
here lets the settings load without httpx, PyJWT or the REST client.
"""

from __future__ import annotations

LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "62.0"
