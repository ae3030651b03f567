"""Exit statuses of the ``glance`` command, and how a library error or a set of outcomes maps to one.

Scripts branch on these, so they are part of the interface: documented in ``glance --help`` (``HELP``) and the
README, and never renumbered.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AUTH",
    "ERROR",
    "HELP",
    "INTERRUPTED",
    "NOT_FOUND",
    "OK",
    "PARTIAL",
    "UNAVAILABLE",
    "USAGE",
    "combine",
    "for_error",
]

OK = 0
ERROR = 1  # anything below does not cover: server error, invalid response, wait timeout, mixed failures
USAGE = 2  # bad command line, bad image id, no node given (click's own usage errors use 2 too)
AUTH = 3  # authentication or permission: 401, 403, wrong password
NOT_FOUND = 4  # the image (or cache entry) does not exist
UNAVAILABLE = 5  # the node has no cache API, or could not be reached at all
PARTIAL = 6  # some nodes or images succeeded, others failed
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

# Shown verbatim in the top-level --help (the \b keeps click from rewrapping it).
HELP = """\b
Exit status:
  0  success
  1  error not listed below (server error, invalid response, --wait timed out,
     different failures with nothing succeeded)
  2  usage: unknown option, invalid image id, no node given
  3  authentication or permission refused (401/403, wrong password)
  4  image not found (404)
  5  cache API not enabled on a node, a node unreachable or not answering
     in time, not a Glance node, or --wait on a pre-Yoga node
  6  partial failure: some nodes or images succeeded, others failed
  130 interrupted (Ctrl-C)"""


def for_error(error: BaseException) -> int:
    """The exit status one failure stands for (library errors, keystoneauth1 errors, input errors)."""
    from glancecache_client import errors

    if isinstance(error, errors.InvalidInput):
        return USAGE
    if isinstance(error, (errors.Unauthorized, errors.Forbidden)):
        return AUTH
    if isinstance(error, errors.NotFound):
        return NOT_FOUND
    if isinstance(error, (errors.UnsupportedFeature, errors.TransportError)):
        return UNAVAILABLE
    if isinstance(error, errors.IdentityFailure) and error.__cause__ is not None:
        return for_error(error.__cause__)
    if type(error).__module__.startswith("keystoneauth1"):
        return _for_keystone_error(error)
    return ERROR


def _for_keystone_error(error: BaseException) -> int:
    from keystoneauth1 import exceptions as ks

    if isinstance(error, (ks.Unauthorized, ks.Forbidden, ks.MissingAuthPlugin, ks.AuthorizationFailure)):
        return AUTH
    if isinstance(error, (ks.ConnectFailure, ks.ConnectionError, ks.DiscoveryFailure, ks.SSLError)):
        return UNAVAILABLE
    if isinstance(error, ks.NotFound):
        return UNAVAILABLE  # the auth URL has no identity API at that path
    return ERROR


def combine(succeeded: int, failures: Iterable[BaseException]) -> int:
    """One status for a whole run: success, partial failure, or the failures' common status."""
    codes = {for_error(error) for error in failures}
    if not codes:
        return OK
    if succeeded:
        return PARTIAL
    if len(codes) == 1:
        return codes.pop()
    return ERROR
