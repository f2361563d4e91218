"""Migration scripts, one per schema version (loaded by Alembic, not imported)."""
