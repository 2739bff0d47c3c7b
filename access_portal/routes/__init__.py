"""Route modules: :mod:`.public` (pages, downloads, catalogue CSV, health) and :mod:`.api` (``/api/v1``)."""
