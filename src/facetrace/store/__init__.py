"""Metadata in SQL (SQLite by default, PostgreSQL by URL), the source of truth."""
