"""The image-cache engine of one node: what is stored, what is cached, and how an image gets into the cache.

Knows nothing about HTTP (``tests/library/test_architecture.py`` keeps it so). One hop to each part:

- ``engine``: ``CacheEngine``, Glance's cache directory layout, the queue, worker pool, prune and clean;
- ``fill``: one fill from ``incomplete/`` to committed or ``invalid/``, and ``verify``, the one checksum rule;
- ``digesting``: writing image data while computing its size and digests (MD5, SHA-512 or what a fill needs);
- ``locks``: per-image locks that exist only while held;
- ``store``: the image catalogue and the shared image store, and the deletion log;
- ``registry``: which images are cached on which node (SQLite or a shared SQL database);
- ``db``: the SQL schema and database engines.
"""
