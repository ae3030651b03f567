"""Sphinx configuration for the glancecache manual (html and man pages).

The build is offline on purpose: CI reaches package registries only, so there is no intersphinx and no theme
or extension that downloads anything. References are generated from the code (click app, cliff entry points,
argparse parser, docstrings) by the extensions below; ``_ext/glancecache_docs.py`` holds the small local ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout, so autodoc imports this tree's code

from glancecache_client import __version__  # noqa: E402

project = "glancecache"
author = "glancecache developers"
copyright = "glancecache developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx_click",
    "sphinxarg.ext",
    "cliff.sphinxext",
    "glancecache_docs",
]

root_doc = "index"
# A command-line manual: "--wait" must stay two hyphens and quotes must stay typeable.
smartquotes = False
exclude_patterns = ["_build", "examples", "schemas"]
html_theme = "alabaster"
html_title = f"glancecache {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# cliff's autoprogram-cliff renders OSC's command parsers; the global options belong to `openstack`, not us.
autoprogram_cliff_application = "openstack"

# One man page per program. glance and glancecache are one program with two names (see the page's NAME).
man_pages = [
    ("reference/cli", "glancecache", "see and manage OpenStack Glance image caches (also installed as glance)",
     [author], 1),
    ("reference/server", "glancecache-server", "Glance-compatible reference server with the image cache",
     [author], 1),
    ("reference/exporter", "glancecache-exporter", "serve Glance image caches as Prometheus metrics", [author], 1),
]
man_show_urls = False
