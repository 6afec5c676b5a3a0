import os

import pytest

from subledger.cli.servecommands import projector_choice
from subledger.settings import (
    DEFAULT_DATABASE_URL,
    ProjectorChoice,
    Settings,
    SettingsError,
    eventsourcing_env,
    parse_database_url,
)


def test_defaults_to_an_sqlite_file_under_var() -> None:
    settings = Settings.from_env({})
    assert settings.database.url == DEFAULT_DATABASE_URL
    assert settings.database.kind == "sqlite"
    assert settings.database.path == "./var/subledger.db"
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "INFO")
    assert settings.max_body_bytes == 1024 * 1024


def test_reads_host_port_level_and_body_limit() -> None:
    settings = Settings.from_env(
        {
            "SUBLEDGER_HOST": "0.0.0.0",
            "SUBLEDGER_PORT": "9001",
            "SUBLEDGER_LOG_LEVEL": "debug",
            "SUBLEDGER_MAX_BODY_BYTES": "2048",
        }
    )
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9001, "DEBUG")
    assert settings.max_body_bytes == 2048


def test_absolute_sqlite_path_keeps_its_leading_slash() -> None:
    assert parse_database_url("sqlite:////srv/ledger.db").path == "/srv/ledger.db"


def test_postgres_url_with_schema_option() -> None:
    db = parse_database_url("postgresql://ann:s3cret@db.internal:6543/ledger?schema=tenant_a")
    assert (db.kind, db.host, db.port, db.user, db.password) == (
        "postgresql",
        "db.internal",
        6543,
        "ann",
        "s3cret",
    )
    assert (db.dbname, db.schema) == ("ledger", "tenant_a")
    assert "s3cret" not in db.redacted_url


def test_a_percent_encoded_password_is_redacted_too() -> None:
    db = parse_database_url("postgresql://ann:p%40ss%2Fw0rd@db.internal:5432/ledger")
    assert db.password == "p@ss/w0rd"
    assert db.redacted_url == "postgresql://ann:***@db.internal:5432/ledger"


def test_schema_variable_overrides_the_url_option() -> None:
    settings = Settings.from_env(
        {
            "SUBLEDGER_DATABASE_URL": "postgresql://u@h/db?schema=a",
            "SUBLEDGER_DATABASE_SCHEMA": "b",
        }
    )
    assert settings.database.schema == "b"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://u@h/db", "unsupported database URL"),
        ("sqlite://relative.db", "bad SQLite URL"),
        ("postgresql://u@h", "needs a host and a database name"),
        ("postgresql://u@h:notaport/db", "bad port"),
        ("postgresql://u@h/db?schema=Bad-Name", "bad schema name"),
        ("postgresql://u@h/db?sslmode=require", "unknown database URL option"),
    ],
)
def test_bad_database_urls_are_one_line_errors(url: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env({"SUBLEDGER_DATABASE_URL": url})


def test_password_never_appears_in_url_errors() -> None:
    with pytest.raises(SettingsError) as error:
        parse_database_url("postgresql://u:hunter2@h/db?schema=Bad-Name")
    assert "hunter2" not in str(error.value)
    with pytest.raises(SettingsError) as error2:
        parse_database_url("postgresql://u:hunter2@h")
    assert "hunter2" not in str(error2.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SUBLEDGER_PORT", "eighty"),
        ("SUBLEDGER_PORT", "70000"),
        ("SUBLEDGER_LOG_LEVEL", "loud"),
        ("SUBLEDGER_WORKERS", "-1"),
        ("SUBLEDGER_WORKERS", "many"),
    ],
)
def test_bad_scalars_are_refused(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        Settings.from_env({key: value})


def test_postgres_env_keeps_db_functions_off_and_sets_a_lock_timeout() -> None:
    env = eventsourcing_env(parse_database_url("postgresql://u:p@h:5433/db?schema=s1"))
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert env["POSTGRES_ENABLE_DB_FUNCTIONS"] == "n"
    assert int(env["POSTGRES_LOCK_TIMEOUT"]) > 0
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_SCHEMA"]) == (
        "h",
        "5433",
        "s1",
    )


def test_sqlite_env_names_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = eventsourcing_env(parse_database_url(f"sqlite:///{tmp_path}/sub/dir/x.db"))
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == f"{tmp_path}/sub/dir/x.db"
    assert (tmp_path / "sub" / "dir").is_dir()


def test_projector_mode_defaults_by_store() -> None:
    assert Settings.from_env({}).projector_mode == "thread"
    pg = Settings.from_env({"SUBLEDGER_DATABASE_URL": "postgresql://u@h/db"})
    assert pg.projector_mode == "process"
    forced = Settings.from_env(
        {"SUBLEDGER_DATABASE_URL": "postgresql://u@h/db", "SUBLEDGER_PROJECTOR": "thread"}
    )
    assert forced.projector_mode == "thread"
    with pytest.raises(SettingsError, match="SUBLEDGER_PROJECTOR"):
        Settings.from_env({"SUBLEDGER_PROJECTOR": "inline"})


@pytest.mark.parametrize(
    ("flag", "configured", "expected"),
    [
        (None, "process", "process"),  # no flag: SUBLEDGER_PROJECTOR decides
        ("with", "thread", "thread"),  # --with-projector keeps a forced thread or process
        ("with", "process", "process"),
        ("with", "external", "auto"),  # ... and overrides only `external`
        ("with", "auto", "auto"),
        ("external", "thread", "external"),  # --without-projector
    ],
)
def test_serve_flags_combine_with_the_environment(
    flag: str | None, configured: ProjectorChoice, expected: str
) -> None:
    assert projector_choice(flag, configured) == expected
    settings = Settings.from_env({"SUBLEDGER_PROJECTOR": configured})
    assert settings.projector == configured


def test_cors_origins_default_to_none_and_are_read_as_a_browser_sends_them() -> None:
    assert Settings.from_env({}).cors_origins == ()
    settings = Settings.from_env(
        {
            "SUBLEDGER_CORS_ORIGINS": " https://Shop.Example.com/ ,http://localhost:3000,"
            "https://shop.example.com:443,http://[::1]:8080,"
        }
    )
    assert settings.cors_origins == (
        "https://shop.example.com",
        "http://localhost:3000",
        "http://[::1]:8080",
    )


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://*.example.com",
        "shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com/path",
        "https://user@shop.example.com",
        "https://x.io:99999",
        "null",
    ],
)
def test_a_bad_cors_origin_stops_the_process_with_its_value(value: str) -> None:
    with pytest.raises(SettingsError, match="SUBLEDGER_CORS_ORIGINS") as raised:
        Settings.from_env({"SUBLEDGER_CORS_ORIGINS": f"https://ok.example.com,{value}"})
    assert repr(value) in str(raised.value)


def test_delivery_defaults_follow_revenuecat() -> None:
    settings = Settings.from_env({})
    assert settings.delivery == "thread"
    assert settings.delivery_retries_s == (300, 600, 1200, 2400, 4800)
    assert settings.delivery_timeout_s == 60
    assert settings.delivery_concurrency == 8


def test_the_retry_schedule_can_run_in_seconds_or_not_at_all() -> None:
    quick = Settings.from_env({"SUBLEDGER_DELIVERY_RETRIES_S": "0.5, 1,2"})
    assert quick.delivery_retries_s == (0.5, 1, 2)
    assert Settings.from_env({"SUBLEDGER_DELIVERY_RETRIES_S": "none"}).delivery_retries_s == ()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SUBLEDGER_DELIVERY_RETRIES_S": "5,x"}, "must be seconds"),
        ({"SUBLEDGER_DELIVERY_RETRIES_S": "5,-1"}, "each 0-604800"),
        ({"SUBLEDGER_DELIVERY": "process"}, "thread or external"),
        ({"SUBLEDGER_DELIVERY_CONCURRENCY": "0"}, "between 1 and 256"),
    ],
)
def test_bad_delivery_settings_are_one_line_errors(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_workers_default_to_the_cores_on_postgresql_and_one_on_sqlite() -> None:
    postgres = {"SUBLEDGER_DATABASE_URL": "postgresql://u@h/db"}
    cores = len(os.sched_getaffinity(0))
    assert Settings.from_env(postgres).worker_count == cores
    assert Settings.from_env({}).worker_count == 1  # SQLite
    assert Settings.from_env({"SUBLEDGER_WORKERS": "3"}).worker_count == 3
    assert Settings.from_env(postgres | {"SUBLEDGER_WORKERS": "1"}).worker_count == 1
    # A projector thread lives in the one HTTP process: one worker unless told otherwise.
    assert Settings.from_env(postgres | {"SUBLEDGER_PROJECTOR": "thread"}).worker_count == 1


def test_the_default_worker_count_fits_the_connections_postgresql_has_free() -> None:
    from subledger.cli.servecommands import WORKER_CONNECTIONS, fit_workers

    assert fit_workers(2, explicit=False, free=None) == (2, None)
    assert fit_workers(2, explicit=False, free=2 * WORKER_CONNECTIONS) == (2, None)
    count, said = fit_workers(32, explicit=False, free=97)
    assert count == 97 // WORKER_CONNECTIONS and said is not None and "SUBLEDGER_WORKERS" in said
    assert fit_workers(32, explicit=False, free=3)[0] == 1  # never none
    count, said = fit_workers(32, explicit=True, free=97)  # the operator's count is kept
    assert count == 32 and said is not None and "max_connections" in said
