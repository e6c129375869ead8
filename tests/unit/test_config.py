"""Settings: Outpost's names, file and environment precedence, generated secrets, the docs table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from waypost import config
from waypost.errors import ConfigError

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


# -- every setting checked where it is declared ---------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "99999"}, "API_PORT or PORT must be between 1 and 65535, not 99999"),
        ({"API_PORT": "0"}, "API_PORT or PORT must be between 1 and 65535, not 0"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be trace, debug, info, warn, warning or error"),
        ({"DELIVERY_TIMEOUT_SECONDS": "nan"}, "DELIVERY_TIMEOUT_SECONDS must be a finite number"),
        ({"DELIVERY_TIMEOUT_SECONDS": "0"}, "DELIVERY_TIMEOUT_SECONDS must be more than 0"),
        ({"LOG_BATCH_SIZE": "0"}, "LOG_BATCH_SIZE must be at least 1, not 0"),
        ({"TOPICS": "user.created,user created"}, "topic 'user created' contains whitespace"),
        ({"TOPICS": "a,b,a"}, "topic 'a' is listed twice"),
        ({"TOPICS": "user.*"}, "'user.*' is a pattern, which needs TOPICS_ALLOW_WILDCARDS=true"),
        ({"RABBITMQ_SERVER_URL": "rabbit:5672"}, "RABBITMQ_SERVER_URL: expected a amqp or amqps"),
        ({"DESTINATIONS_ALLOWED_NETWORKS": "10.0.0.0/33"}, "'10.0.0.0/33' is not a network"),
        ({"OPERATOR_EVENTS_HTTP_URL": "ftp://x"}, "OPERATOR_EVENTS_HTTP_URL: expected a http"),
        ({"PROMETHEUS_PORT": "70000"}, "PROMETHEUS_PORT must be between 0 and 65535, not 70000"),
        (
            {"PROMETHEUS_ENABLED": "true", "PORT": "9100", "PROMETHEUS_PORT": "9100"},
            "PROMETHEUS_PORT must differ from PORT",
        ),
    ],
)
def test_each_setting_is_refused_outside_its_declared_rule(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(env)


COMPAT_HEADER = "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM": "hmac-sha1"},
            f"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM is set but does nothing without "
            f"{COMPAT_HEADER}",
        ),
        (
            {"DESTINATIONS_WEBHOOK_COMPAT_HEADERS": "x=1", COMPAT_HEADER: "  "},
            "DESTINATIONS_WEBHOOK_COMPAT_HEADERS is set but does nothing without",
        ),
        ({COMPAT_HEADER: "  "}, f"{COMPAT_HEADER}: must not be only spaces"),
        (
            {"RABBITMQ_SERVER_URL": "amqp://127.0.0.1:5672/"},
            "RABBITMQ_SERVER_URL needs POSTGRES_URL (the queue's source of truth)",
        ),
    ],
)
def test_a_setting_is_refused_without_the_one_it_declares_it_needs(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(env)


def test_a_needed_setting_given_lets_the_others_through() -> None:
    loaded = config.load(
        {COMPAT_HEADER: "X-Old", "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM": "hmac-sha1"}
    )
    assert loaded.destinations_webhook_compat_signature_algorithm == "hmac-sha1"
    # a compat setting given its default value is not "set"
    assert config.load({"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ENCODING": "hex"})


def test_the_cli_offers_the_services_service_declares() -> None:
    from waypost import cli

    with pytest.raises(SystemExit) as refused:
        cli.main(["serve", "--service", "portal"])
    assert refused.value.code == 2
    assert [c for c in config.choices("service") if c] == ["all", "api", "delivery"]


def test_every_problem_is_named_at_once_on_one_line() -> None:
    report = config.inspect({"PORT": "70000", "LOG_FORMAT": "xml", "MAX_RETRY_LIMIT": "x"})
    assert len(report.problems) == 3
    with pytest.raises(ConfigError) as caught:
        config.load({"PORT": "70000", "LOG_FORMAT": "xml", "MAX_RETRY_LIMIT": "x"})
    assert "\n" not in str(caught.value)


def test_choices_are_matched_in_any_case_and_kept_as_declared() -> None:
    loaded = config.load({"LOG_FORMAT": "JSON", "SQLITE_SYNCHRONOUS": "normal"})
    assert (loaded.log_format, loaded.sqlite_synchronous) == ("json", "NORMAL")


def test_topics_with_wildcards_allowed_may_hold_patterns() -> None:
    loaded = config.load({"TOPICS": "user.*", "TOPICS_ALLOW_WILDCARDS": "true"})
    assert loaded.topics == ("user.*",)


def test_postgres_url_over_a_unix_socket_is_a_url() -> None:
    keys = {"API_KEY": "k", "API_JWT_SECRET": "s", "AES_ENCRYPTION_SECRET": "a"}
    assert config.load({"POSTGRES_URL": "postgresql:///outpost", **keys}).postgres_url


# -- variables that look meant for us -------------------------------------------------------------


def test_typos_and_outpost_only_variables_are_warned_about() -> None:
    warnings: list[str] = []
    config.load(
        {"API_PROT": "1", "OUTPOST_DATADIR": "x", "REDIS_HOST": "r", "HOME": "/", "PATH": "/"},
        warnings=warnings,
    )
    assert warnings == [
        "API_PROT is not a setting (did you mean API_PORT?); ignored",
        "OUTPOST_DATADIR is not a setting (did you mean OUTPOST_DATA_DIR?); ignored",
        "REDIS_HOST configures a part of Outpost this server does not have; ignored",
    ]


# -- Outpost's nested YAML ------------------------------------------------------------------------


def test_outposts_nested_yaml_is_read_under_the_flat_names(tmp_path: Path) -> None:
    yaml_file = tmp_path / "outpost.yaml"
    yaml_file.write_text(
        "api_port: 4001\n"
        "retry_max_limit: 4\n"
        "postgres: postgresql://db.internal/outpost\n"
        "api_key: k\napi_jwt_secret: s\naes_encryption_secret: a\n"
        "mqs:\n  rabbitmq:\n    server_url: amqp://mq.internal\n    exchange: ex\n"
        "destinations:\n  webhook:\n    mode: standard\n    header_prefix: x-acme-\n"
        "  aws_kinesis:\n    metadata_in_payload: false\n"
        "portal:\n  org_name: Acme\n  brand_color: '#123456'\n"
        "alert:\n  consecutive_failure_count: 7\n  auto_disable_destination: true\n"
        "idgen:\n  type: uuidv7\n  event_prefix: evt_\n"
        "otel:\n  service_name: outpost\n"
    )
    warnings: list[str] = []
    loaded = config.load({}, config_file=str(yaml_file), warnings=warnings)
    assert loaded.port == 4001
    assert loaded.max_retry_limit == 4
    assert loaded.postgres_url == "postgresql://db.internal/outpost"
    assert (loaded.rabbitmq_server_url, loaded.rabbitmq_exchange) == ("amqp://mq.internal", "ex")
    assert loaded.destinations_webhook_mode == "standard"
    assert loaded.destinations_webhook_header_prefix == "x-acme-"
    assert loaded.destinations_aws_kinesis_metadata_in_payload is False
    assert (loaded.portal_organization_name, loaded.portal_brand_color) == ("Acme", "#123456")
    assert loaded.alert_consecutive_failure_count == 7
    assert loaded.alert_auto_disable_destination is True
    assert (loaded.idgen_type, loaded.idgen_event_prefix) == ("uuidv7", "evt_")
    assert loaded.otel_service_name == "outpost"
    assert warnings == []


def test_yaml_sections_of_parts_we_replace_are_warned_about(tmp_path: Path) -> None:
    yaml_file = tmp_path / "outpost.yaml"
    yaml_file.write_text("redis:\n  host: r\n  port: 6379\nmqs:\n  awssqs:\n    region: x\n")
    warnings: list[str] = []
    config.load({}, config_file=str(yaml_file), warnings=warnings)
    assert [w.split(": ", 1)[1] for w in warnings] == [
        "`redis.host` configures a part of Outpost this server does not have; ignored",
        "`redis.port` configures a part of Outpost this server does not have; ignored",
        "`mqs.awssqs.region` configures a part of Outpost this server does not have; ignored",
    ]


def test_unknown_yaml_keys_are_refused_with_their_path(tmp_path: Path) -> None:
    yaml_file = tmp_path / "outpost.yaml"
    yaml_file.write_text("api_prot: 3\ndestinations:\n  webhook:\n    modes: standard\n")
    with pytest.raises(ConfigError) as caught:
        config.load({}, config_file=str(yaml_file))
    message = str(caught.value)
    assert "`api_prot` is not a setting (did you mean api_port?)" in message
    assert "`destinations.webhook.modes` is not a setting" in message


def test_invalid_yaml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "outpost.yaml"
    yaml_file.write_text("topics: [a\n")
    with pytest.raises(ConfigError, match=r"outpost.yaml: not valid YAML at line \d"):
        config.load({}, config_file=str(yaml_file))


# -- what operators see -----------------------------------------------------------------------


def test_effective_settings_mask_secrets_and_say_where_each_came_from(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("MAX_RETRY_LIMIT=4\n")
    report = config.inspect(
        {
            "CONFIG": str(env_file),
            "API_KEY": "very-secret-key",
            "POSTGRES_URL": "postgresql://app:hunter2@db/outpost",
            "API_JWT_SECRET": "s",
            "AES_ENCRYPTION_SECRET": "a",
        }
    )
    shown = config.effective_settings(report)
    assert "very-secret-key" not in shown and "hunter2" not in shown
    assert "API_KEY=********  # environment" in shown
    assert "POSTGRES_URL=postgresql://app:********@db/outpost  # environment" in shown
    assert f"MAX_RETRY_LIMIT=4  # {env_file}" in shown
    assert "API_PORT=3333  # default" in shown


def test_an_unwritable_data_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # no folder can be made under a file, whoever runs the test
    with pytest.raises(ConfigError, match=r"cannot keep api_key in OUTPOST_DATA_DIR .*a-file"):
        config.with_generated_secrets(config.load({"OUTPOST_DATA_DIR": str(blocked / "data")}))


def test_only_secrets_generated_just_now_are_reported(tmp_path: Path) -> None:
    env = {"OUTPOST_DATA_DIR": str(tmp_path)}
    _, first = config.with_generated_secrets(config.load(env))
    _, second = config.with_generated_secrets(config.load(env))
    assert str(tmp_path / "api_key") in first
    assert second == []
