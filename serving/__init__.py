"""Serving: per-user recommendation lists (batch), and later bundles and the HTTP API."""
