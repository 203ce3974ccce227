"""The local S3-compatible server (moto's) and the throwaway PostgreSQL cluster, for real."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from driftwatch.objectstore import S3Credentials, start_s3_server
from driftwatch.postgres import pg_bin_dir, start_postgres

pytestmark = pytest.mark.integration


def test_s3_server_stores_lists_and_returns_objects(tmp_path: Path) -> None:
    with start_s3_server(buckets=("artifacts",), log=tmp_path / "s3.log") as s3:
        client = s3.endpoint.client()
        client.put_object(Bucket="artifacts", Key="runs/1/model.pkl", Body=b"\x00model")
        assert client.get_object(Bucket="artifacts", Key="runs/1/model.pkl")["Body"].read() == b"\x00model"
        listed = client.list_objects_v2(Bucket="artifacts", Prefix="runs/")
        assert [o["Key"] for o in listed["Contents"]] == ["runs/1/model.pkl"]
        s3.endpoint.ensure_bucket("artifacts")  # idempotent
        env = s3.endpoint.env()
        assert env["MLFLOW_S3_ENDPOINT_URL"] == s3.url and env["AWS_SECRET_ACCESS_KEY"]
    assert s3.process is None


def test_s3_credentials_never_show_the_secret_in_repr() -> None:
    creds = S3Credentials.generate()
    assert creds.secret_access_key not in repr(creds)


def test_postgres_cluster_needs_the_password_and_keeps_data_across_a_restart() -> None:
    assert (pg_bin_dir() / "postgres").exists()
    with start_postgres() as pg:
        conn = psycopg.connect(pg.uri())
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (x int)")
            cur.execute("INSERT INTO t VALUES (42)")
        conn.close()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password="wrong", dbname=pg.database)
        pg.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.uri(), connect_timeout=2)
        pg.start()
        conn = psycopg.connect(pg.uri())
        with conn, conn.cursor() as cur:
            cur.execute("SELECT x FROM t")
            assert cur.fetchone() == (42,)
        conn.close()
        other = pg.create_database("second")
        assert other.endswith("/second")
    assert not pg.dir.exists()
