"""Issue 17: two ultrawatch instances' Prometheus textfiles on one node_exporter never
name the same series (a `platform` label on every series), and `--only` naming no
configured target is "nothing to check" like an empty config."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from collectors.config import load_config, parse_config
from tests.conftest import run_cli

# A target that needs no server: this test process, watched by its pid.
PROCESS = f"""
[[processes]]
name = "self"
pid = {os.getpid()}
memory_limit = "1024GiB"
"""

Series = tuple[str, frozenset[tuple[str, str]]]


def _series(text: str) -> list[Series]:
    """Every sample of an exposition as (name, labels); parsing proves it is valid."""
    return [
        (s.name, frozenset(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _textfile(write_config, textfiles: Path, stem: str, extra: str = "") -> str:
    config = write_config(extra + PROCESS, name=f"{stem}.toml")
    target = textfiles / f"{stem}.prom"
    r = run_cli("check", "--config", str(config), "--format", "prometheus", "--output", str(target))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    return target.read_text()


def test_two_instances_textfiles_never_collide(write_config, tmp_path: Path) -> None:
    textfiles = tmp_path / "node_exporter"  # one node_exporter's textfile directory
    textfiles.mkdir()
    eu = _series(_textfile(write_config, textfiles, "shop-eu"))
    us = _series(_textfile(write_config, textfiles, "shop-us"))
    # Every series carries the platform: the config file's stem.
    assert eu and us
    assert {dict(labels).get("platform") for _, labels in eu} == {"shop-eu"}
    assert {dict(labels).get("platform") for _, labels in us} == {"shop-us"}
    # node_exporter merges the files: no series of one names a series of the other ...
    assert not set(eu) & set(us)
    assert len(set(eu)) == len(eu) and len(set(us)) == len(us)

    # ... and they differ by the platform label alone: same metric names, same other labels.
    def without_platform(series: list[Series]) -> set[Series]:
        return {(n, frozenset(kv for kv in labels if kv[0] != "platform")) for n, labels in series}

    assert without_platform(eu) == without_platform(us)
    names = {n for n, _ in eu}
    assert {"ultrawatch_status", "ultrawatch_check_status", "ultrawatch_check_value_ratio"} <= names
    expected = {("platform", "shop-eu"), ("id", "process.self.memory"), ("component", "processes")}
    assert any(n == "ultrawatch_check_status" and expected <= labels for n, labels in eu)


def test_platform_key_names_the_platform(write_config, tmp_path: Path) -> None:
    textfiles = tmp_path / "tf"
    textfiles.mkdir()
    text = _textfile(
        write_config, textfiles, "ultrawatch", extra='[dashboard]\nplatform = "shop-eu"\n'
    )
    assert {dict(labels)["platform"] for _, labels in _series(text)} == {"shop-eu"}
    assert 'ultrawatch_status{platform="shop-eu"} 0\n' in text
    # `config check` says which platform a config names.
    r = run_cli("config", "check", "--config", str(tmp_path / "ultrawatch.toml"))
    assert r.returncode == 0 and "ok (platform shop-eu, " in r.stdout


def test_a_bad_platform_is_a_config_error(write_config) -> None:
    config = write_config('[dashboard]\nplatform = "shop eu"\n' + PROCESS, name="shop.toml")
    r = run_cli("check", "--config", str(config), "--format", "prometheus")
    assert r.returncode == 3 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert f"{config}: dashboard.platform: expected a name" in line
    assert "'shop eu'" in line


def test_a_config_from_stdin_is_platform_ultrawatch(tmp_path: Path) -> None:
    r = run_cli("check", "--config", "/dev/stdin", "--format", "prometheus", input=PROCESS)
    assert r.returncode == 0, r.stderr
    platforms = {dict(labels).get("platform") for _, labels in _series(r.stdout)}
    assert platforms == {"ultrawatch"}


def test_default_platform_is_the_stem_made_a_name(tmp_path: Path) -> None:
    weird = tmp_path / "shop eu (prod).toml"
    weird.write_text(PROCESS)
    assert load_config(weird).platform == "shop-eu-prod-"
    plain = tmp_path / "shop-eu.toml"
    plain.write_text(PROCESS)
    assert load_config(plain).platform == "shop-eu"
    # A config that was never a file (a test's, an old recording's): "ultrawatch".
    assert parse_config(PROCESS).platform == "ultrawatch"
    r = run_cli("config", "check", "--config", str(plain))
    assert r.returncode == 0 and "ok (platform shop-eu, " in r.stdout


def test_only_a_target_not_configured_is_nothing_to_check(write_config) -> None:
    config = write_config(PROCESS, name="shop-eu.toml")
    r = run_cli("check", "--config", str(config), "--only", "redis")
    assert r.returncode == 3 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"ultrawatch: {config}: nothing to check: --only redis")
    assert "configured: processes" in line
    # One configured target among those named: it is checked.
    r = run_cli("check", "--config", str(config), "--only", "redis,processes")
    assert r.returncode == 0, r.stderr
