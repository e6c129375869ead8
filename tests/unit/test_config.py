"""Settings: Outpost's names, file and environment precedence, generated secrets, the docs table."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpost import config
from outpost.errors import ConfigError

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_defaults_match_outpost_where_documented() -> None:
    loaded = config.load({})
    assert loaded.port == 3333
    assert loaded.max_retry_limit == 10
    assert loaded.retry_interval_seconds == 30
    assert loaded.delivery_timeout_seconds == 5.0
    assert loaded.publish_idempotency_key_ttl == 3600
    assert loaded.max_destinations_per_tenant == 20
    assert loaded.destinations_webhook_max_response_body_bytes == 131072
    assert loaded.topics == ()


def test_environment_values_are_parsed_by_type() -> None:
    loaded = config.load(
        {
            "TOPICS": "user.created, user.updated,,",
            "TOPICS_ALLOW_WILDCARDS": "true",
            "RETRY_SCHEDULE": "5,60,600",
            "DELIVERY_TIMEOUT_SECONDS": "2.5",
            "PORT": "4000",
        }
    )
    assert loaded.topics == ("user.created", "user.updated")
    assert loaded.topics_allow_wildcards is True
    assert loaded.retry_schedule == (5, 60, 600)
    assert loaded.delivery_timeout_seconds == 2.5
    assert loaded.port == 4000


def test_api_port_wins_over_port_alias() -> None:
    assert config.load({"API_PORT": "5000", "PORT": "4000"}).port == 5000


def test_env_file_is_read_and_environment_overrides_it(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text('# comment\nTOPICS="a,b"\nexport MAX_RETRY_LIMIT=4\nPORT=1234\n')
    loaded = config.load({"CONFIG": str(env_file), "PORT": "999"})
    assert loaded.topics == ("a", "b")
    assert loaded.max_retry_limit == 4
    assert loaded.port == 999


def test_yaml_file_uses_snake_case_names_and_lists(tmp_path: Path) -> None:
    yaml_file = tmp_path / "outpost.yaml"
    yaml_file.write_text(
        "topics: [user.created, user.deleted]\nretry_schedule: [1, 2]\napi_key: k\n"
    )
    loaded = config.load({}, config_file=str(yaml_file))
    assert loaded.topics == ("user.created", "user.deleted")
    assert loaded.retry_schedule == (1, 2)
    assert loaded.api_key == "k"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"RETRY_SCHEDULE": "0,5"}, "RETRY_SCHEDULE"),
        ({"RETRY_INTERVAL_SECONDS": "0"}, "RETRY_INTERVAL_SECONDS"),
        ({"MAX_RETRY_LIMIT": "many"}, "MAX_RETRY_LIMIT"),
        ({"TOPICS_ALLOW_WILDCARDS": "perhaps"}, "TOPICS_ALLOW_WILDCARDS"),
        ({"SERVICE": "log"}, "SERVICE"),
        ({"IDGEN_TYPE": "serial"}, "IDGEN_TYPE"),
        ({"DELIVERY_LEASE_SECONDS": "5"}, "DELIVERY_LEASE_SECONDS"),
    ],
)
def test_bad_settings_refuse_to_start_with_the_variable_named(
    env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        config.load(env)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load({"CONFIG": str(tmp_path / "nope.yaml")})


def test_unset_api_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first, notes = config.with_generated_secrets(config.load({"OUTPOST_DATA_DIR": str(tmp_path)}))
    second, _ = config.with_generated_secrets(config.load({"OUTPOST_DATA_DIR": str(tmp_path)}))
    assert len(first.api_key) >= 32
    assert first.api_key == second.api_key
    assert first.api_jwt_secret == second.api_jwt_secret != first.api_key
    assert (tmp_path / "api_key").stat().st_mode & 0o777 == 0o600
    assert str(tmp_path / "api_key") in notes


def test_explicit_api_key_is_never_replaced(tmp_path: Path) -> None:
    loaded, _ = config.with_generated_secrets(
        config.load({"OUTPOST_DATA_DIR": str(tmp_path), "API_KEY": "mine"})
    )
    assert loaded.api_key == "mine"
    assert not (tmp_path / "api_key").exists()


def test_configuration_docs_list_every_setting_as_the_code_does() -> None:
    assert config.markdown_table() in DOCS.read_text(), "run scripts/docs"


def test_split_services_need_postgres() -> None:
    with pytest.raises(ConfigError, match="SERVICE=api or delivery needs POSTGRES_URL"):
        config.load({"SERVICE": "delivery"})


def test_postgres_mode_needs_explicit_keys_for_the_api() -> None:
    url = "postgresql://127.0.0.1/outpost"
    with pytest.raises(ConfigError, match="set API_KEY and API_JWT_SECRET"):
        config.load({"POSTGRES_URL": url})
    aes = {
        "AES_ENCRYPTION_SECRET": "a"
    }  # every process opens credentials: tests/unit/test_sealing.py
    assert config.load({"POSTGRES_URL": url, "SERVICE": "delivery", **aes}).service == "delivery"
    keys = {"API_KEY": "k", "API_JWT_SECRET": "s", **aes}
    assert config.load({"POSTGRES_URL": url, **keys}).postgres_url
