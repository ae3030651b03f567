"""Throwaway databases on the PostgreSQL and MariaDB test servers, for tests of the shared registry.

Owns: ``private_database`` (a fresh database, dropped afterwards, so parallel runs never share rows; a server
that does not answer skips the test and says why; any other failure is an error).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}


def private_database(kind: str, prefix: str) -> Iterator[str]:
    """Yield the URL of a new database ``<prefix>_<random>`` on server ``kind``; drop it afterwards."""
    admin_url = sa.make_url(SERVERS[kind])
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa_exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"{kind} at {admin_url.host}:{admin_url.port} does not answer: {exc.orig}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE {name} WITH (FORCE)" if kind == "postgresql" else f"DROP DATABASE {name}"
        with admin.connect() as conn:
            conn.exec_driver_sql(drop)
        admin.dispose()
