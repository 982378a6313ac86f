"""Issue 16: the [alertmanager] section: errors that name the key, and credentials
that the registry knows as secrets (scrubbed from every error, never recorded)."""

from __future__ import annotations

import pytest

from collectors.config import parse_config
from collectors.core.settings import ConfigError
from collectors.registry import config_secrets, config_without_passwords
from tests.conftest import run_cli

TARGET = '[[processes]]\nname = "self"\npid = 1\n'


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('resend = "1m"', "alertmanager.url: required"),
        ('url = "http://a:9093"\nurls = ["http://b:9093"]', "alertmanager.urls: give either"),
        ('urls = ["http://a:9093", "http://a:9093"]', "alertmanager.urls: expected distinct"),
        ('url = "alertmanager:9093"', "alertmanager.url: expected an http(s) URL"),
        ('url = "http://u:pw@a:9093"', "without user or password"),
        ('url = "http://a:9093"\nusername = "u"', "alertmanager.password: basic auth needs both"),
        (
            'url = "http://a:9093"\nbearer_token = "t"\nusername = "u"\npassword = "p"',
            "alertmanager.bearer_token: give either basic auth or a bearer token",
        ),
        (
            'url = "http://a:9093"\nresend = "500ms"',
            "alertmanager.resend: expected a duration of at least 1s",
        ),
        (
            'url = "http://a:9093"\nca_file = "/nonexistent/ca.pem"',
            "alertmanager.ca_file: expected an existing file",
        ),
        (
            'url = "http://a:9093"\nresnd = "1m"',
            "alertmanager.resnd: unknown key; did you mean 'resend'?",
        ),
    ],
)
def test_errors_name_the_key(section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"{TARGET}[alertmanager]\n{section}\n", "am.toml")
    assert str(info.value).startswith("am.toml: ")
    assert expected in str(info.value)


def test_an_alertmanager_alone_is_nothing_to_check(write_config) -> None:
    config = write_config('[alertmanager]\nurl = "http://127.0.0.1:9093"\n')
    r = run_cli("config", "check", "--config", str(config))
    assert r.returncode == 3 and "nothing to check" in r.stderr


@pytest.mark.parametrize(
    "auth", ['username = "ops"\npassword = "Am-Planted-Pass"', 'bearer_token = "Am-Planted-Pass"']
)
def test_credentials_are_registered_secrets(auth: str) -> None:
    config = parse_config(f'{TARGET}[alertmanager]\nurl = "http://a:9093"\n{auth}\n')
    assert "Am-Planted-Pass" in config_secrets(config)
    kept = config_without_passwords(config)
    assert kept.alertmanager is not None
    assert "Am-Planted-Pass" not in repr(kept)
    assert kept.alertmanager.url == "http://a:9093"
