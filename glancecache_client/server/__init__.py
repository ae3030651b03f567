"""The glancecache reference server: a Glance-compatible image node running the whole image-cache engine.

Laid out as it works (``tests/server/{engine,http}`` mirror it):

- ``engine/``: the image cache of a node, with no HTTP in it (``CacheEngine``, fills and ``verify``, the image
  store, the cache registry, the SQL schema); see its package docstring;
- ``http/``: the listener, the WSGI app, its routes, authentication, policy and the identity service;
- here, the composition root: ``runner`` (``run_cluster``/``start_cluster`` build a ``ReferenceCluster`` from
  ``config.ServerSettings``), ``__main__`` (the ``glancecache-server`` command) and ``logs``.

It never imports the client side of this distribution (``glancecache_client.client``, ``cli``, ...):
tests are the only place where the two meet, so wire-format drift between them cannot hide. ``engine/`` never
imports ``http/`` (``tests/library/test_architecture.py`` checks both).
"""
