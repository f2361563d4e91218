"""Tests of incamera serve: configuration, store, meetings, HTTP API, the real server."""
