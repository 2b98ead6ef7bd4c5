"""Real local stand-ins for external services used by the tests (no mocks: real HTTP on 127.0.0.1)."""
