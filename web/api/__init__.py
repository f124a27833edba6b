"""The JSON API, mounted at /api/v1/ (web.api.app); every error in it is problem+json."""
