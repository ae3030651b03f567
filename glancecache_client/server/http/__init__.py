"""The HTTP side of one node: the listener, the WSGI application, its routes and who may call them.

One hop to each part:

- ``listener``: the asyncio + h11 HTTP/1.1 listener, its limits and timeouts, the WSGI app on a thread pool;
- ``app``: ``GlanceApp``, the route table and the request pipeline in Glance's order, access logging;
- ``request``: ``Node`` and ``ApiRequest``, reading headers, query and body the way Glance does;
- ``faults``: error replies shaped byte for byte like Glance 33's;
- ``versions``: the version document and version negotiation;
- ``cache_api``, ``image_api``, ``schema_api``: the route handlers;
- ``context``, ``policy``: who is calling and what they may do;
- ``identity``: the minimal Keystone v3 service served at ``/identity`` in keystone mode;
- ``documents``: reading the operator's JSON or YAML files (policy, users).
"""
