"""Alembic migrations for the bespoke tables (run by `bespoke.store.db.get_engine`)."""
