"""Numbered PostgreSQL migrations (``0001_name.sql``), applied in order by
``bot.store.backend.migrate``. Never edit a released file: add the next number."""
