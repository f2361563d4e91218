"""Alembic migrations of the incamera schema, run at start-up by ``Database.upgrade``.

To change the schema, add a file to ``versions/`` by hand (copy the newest one, set
``revision`` to a new id and ``down_revision`` to the previous one) and update
``incamera/store/schema.py`` to match; the test suite checks the two agree.
"""
