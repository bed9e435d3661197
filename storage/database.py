"""Engine, sessions and migrations.

SQLite (the embedded default) gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE.
PostgreSQL (the store several processes and machines share) gets a bounded pool that tests each
connection before use, and migrations that take an advisory lock so processes starting together
migrate one after the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError
from sqlalchemy.orm import sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# Execution option the repository sets on read-only sessions: on SQLite they open a plain
# (deferred) transaction, so in WAL mode readers never wait for, or block, a writer.
READ_ONLY = {"modelsmith_read_only": True}
# Per process. The app's UI polling, job threads and heartbeats rarely hold more than a few
# connections at once; several processes on several machines share PostgreSQL's max_connections
# (100 by default), so each takes at most POOL_SIZE + POOL_OVERFLOW.
POOL_SIZE = 5
POOL_OVERFLOW = 5
POOL_RECYCLE_S = 1800  # older connections are replaced: firewalls and proxies drop idle TCP sessions
CONNECT_TIMEOUT_S = 10
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied"
# Any constant shared by every Modelsmith process: the key of the advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x4D6F64656C  # "Model"


class DatabaseUnavailable(Exception):
    """The database URL is malformed, its driver is missing, or the server cannot be reached."""


def database_url(url: str) -> URL:
    """Parse a database URL; `postgresql://` and `postgres://` mean the psycopg 3 driver we ship.

    Raises DatabaseUnavailable with what to fix for a URL SQLAlchemy cannot parse.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(
            "MODELSMITH_DATABASE_URL is not a database URL. Use e.g. sqlite:////path/modelsmith.db or "
            "postgresql+psycopg://user:password@host:5432/modelsmith.") from None
    if parsed.drivername in ("postgresql", "postgres"):  # SQLAlchemy's default would be psycopg2, not installed
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str) -> Engine:
    """An Engine for any SQLAlchemy URL; a SQLite file is tuned for many threads, PostgreSQL for many processes."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _make_server_engine(parsed)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _make_server_engine(parsed: URL) -> Engine:
    options: dict = {"pool_pre_ping": True, "pool_recycle": POOL_RECYCLE_S}  # a restarted server costs no request
    if parsed.get_backend_name() == "postgresql":
        options |= {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        if parsed.get_driver_name() == "psycopg":
            # application_name: a DBA sees which connections are ours (pg_stat_activity). TCP
            # keepalives: a query to a server behind a dropped network link fails in about a minute
            # instead of hanging for the kernel's ~15. The URL's own query parameters win over these.
            defaults = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "modelsmith", "keepalives": 1,
                        "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
            options["connect_args"] = {key: value for key, value in defaults.items() if key not in parsed.query}
    try:
        return create_engine(parsed, **options)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise DatabaseUnavailable(
            f"No driver for {parsed.drivername} ({exc}). Use postgresql+psycopg://... for PostgreSQL "
            "(psycopg is in requirements.txt), or install the driver the URL names.") from None


def _on_sqlite_connect(dbapi_connection, _connection_record) -> None:
    # SQLAlchemy's documented pysqlite recipe: stop the driver from issuing its own (deferred)
    # BEGIN, so _on_sqlite_begin decides how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: the WAL switch may have to wait
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # persistent in the file; readers and a writer coexist
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed transaction
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes must upgrade its lock, and SQLite answers
    # "database is locked" at once (no busy wait) when another writer got there first. BEGIN
    # IMMEDIATE takes the write lock up front, so concurrent writers queue on busy_timeout instead.
    if connection.get_execution_options().get("modelsmith_read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessions(engine: Engine) -> sessionmaker:
    """The one sessionmaker of the process; objects stay readable after commit for record building."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection) -> Config:
    """An Alembic Config for our migrations folder that runs on `connection` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))  # absolute: any cwd works
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (head by default); a no-op when already there.

    Raises DatabaseUnavailable, naming the URL (password hidden), when the server cannot be reached
    or its user may not create the tables.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        connection = engine.connect()
    except OperationalError as exc:
        reason = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
        check = ("that its folder exists and is writable (MODELSMITH_HOME)" if engine.dialect.name == "sqlite" else
                 "MODELSMITH_DATABASE_URL (host, port, user, password, database name) and that the server is running")
        raise DatabaseUnavailable(f"Cannot connect to the database {where}: {reason}. Check {check}.") from None
    with connection:
        try:
            _migrate(connection, revision)
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            user = engine.url.username or "the database user"
            raise DatabaseUnavailable(
                f"{user} may not create Modelsmith's tables in {where}: {str(exc.orig).splitlines()[0]}. "
                f"Make {user} the database's owner (createdb --owner {user} ...) or run "
                f"GRANT CREATE ON SCHEMA public TO {user}.") from None
    log.debug("database migrated to %s", revision)


def _migrate(connection: Connection, revision: str) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table (copy, DROP, rename); with foreign keys on, dropping
        # `runs` would cascade-delete every metric. The PRAGMA is ignored inside a transaction,
        # so it goes to the driver before ours begins, as SQLite's ALTER TABLE guide says.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Workers and app processes may start together: the second waits here, then finds
                # the schema at head. DDL is transactional on PostgreSQL, so a failure leaves none.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(connection), revision)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:  # raising rolls the whole upgrade back: the old schema stays usable
                    raise RuntimeError(f"migration to {revision} left broken foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
