"""The glancecache reference server: a Glance-compatible image node running the whole image-cache engine.

It never imports the client side of this distribution (``glancecache_client.client``, ``cli``, ...):
tests are the only place where the two meet, so wire-format drift between them cannot hide.
"""
