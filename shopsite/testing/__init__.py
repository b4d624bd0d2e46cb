"""Test-only machinery that must be importable by settings (never used in production)."""
