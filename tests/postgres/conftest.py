"""PostgreSQL fixtures (see tests/postgres/pg.py): `pg_server`, `pg_databases`, `pg_env`."""
from tests.postgres.pg import pg_databases, pg_env, pg_server  # noqa: F401
