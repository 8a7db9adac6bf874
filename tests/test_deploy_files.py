"""The deployment files check out with the tools that will read them.

- `systemd/fleetward.service`: `systemd-analyze verify` (no warning about the unit, not only
  exit status 0: verify reports an unknown key or an unparsable value as a warning, ignores the
  line and still exits 0), `systemd-analyze security --offline` (exposure at most 2.0), and the
  settings the daemon relies on.
- `examples/prometheus/`: `promtool check config`, `promtool check rules`, `promtool test rules`;
  every metric an alert uses is one the daemon exports (DESIGN §7), every alert is unit-tested.
- `examples/daemon/fleetward.yaml`: every daemon key, with values the unit and the scrape
  config agree with.

Each tool check skips, saying why, only when the tool is not installed. For each, a mangled
copy of the file is shown to fail, so a pass means something.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "fleetward.service"
PROMETHEUS = ROOT / "examples" / "prometheus"
DAEMON_CONFIG = ROOT / "examples" / "daemon" / "fleetward.yaml"

INSTALLED_BINARY = "/usr/local/bin/fleetward"

# DESIGN §7; histograms also export _bucket, _sum and _count.
METRICS = {
    "fleetward_reconcile_total",
    "fleetward_reconcile_duration_seconds",
    "fleetward_objects",
    "fleetward_plan_changes",
    "fleetward_drift_objects",
    "fleetward_manifest_errors",
    "fleetward_source_fetch_failures_total",
    "fleetward_last_success_timestamp_seconds",
    "fleetward_operations",
    "fleetward_build_info",
    "fleetward_window_open",
    "fleetward_held_changes",
    "fleetward_suspended",
}
ALERTS = {
    "FleetwardDown",
    "FleetwardReconcileFailing",
    "FleetwardNoRecentSuccess",
    "FleetwardManifestErrors",
    "FleetwardDriftPresent",
    "FleetwardChangesHeld",
    "FleetwardSourceFetchFailing",
}
DAEMON_KEYS = {
    "source",
    "ref",
    "path",
    "state-dir",
    "cache-dir",
    "no-cache",
    "interval",
    "listen",
    "log-format",
    "ready-max-age",
    "operation-timeout",
    "webhook-secret-file",
    "api-token-file",
}


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({hint})")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


# --- systemd -------------------------------------------------------------------------------------


def _verifiable(tmp_path: Path, text: str) -> Path:
    """A copy of the unit that verify can check on this machine.

    verify refuses a unit whose ExecStart= binary does not exist; unless fleetward is installed
    where the unit expects it, point ExecStart= at an executable that exists here (verify only
    checks that it is executable, it never runs it).
    """
    if not Path(INSTALLED_BINARY).is_file():
        text = text.replace(INSTALLED_BINARY, shutil.which("fleetward") or sys.executable)
    copy = tmp_path / "fleetward.service"  # verify takes the unit's name from the file's
    copy.write_text(text, encoding="utf-8")
    return copy


def _verify_problems(unit: Path) -> list[str]:
    """What `systemd-analyze verify` has to say about the unit; empty when it is clean."""
    tool = _tool("systemd-analyze", "Debian package 'systemd'")
    result = _run(tool, "verify", "--man=no", str(unit))
    # Lines about other units (the targets the unit pulls in, broken units elsewhere on this
    # machine) are not this file's problem; everything naming the unit is.
    problems = [line for line in result.stderr.splitlines() if unit.name in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}: {result.stderr.strip()}")
    return problems


def _unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value, in order (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = _verifiable(tmp_path, UNIT.read_text(encoding="utf-8"))
    assert _verify_problems(unit) == []


@pytest.mark.parametrize(
    ("original", "mangled"),
    [
        ("ProtectSystem=strict", "ProtectSytem=strict"),  # unknown key: a warning, exit 0
        ("WatchdogSec=120", "WatchdogSec=two minutes"),  # unparsable value: a warning, exit 0
        ("Type=notify", "Type=notfy"),
        ("[Service]", "[Service"),  # the unit does not load: exit 1
    ],
    ids=["unknown-key", "bad-timespan", "bad-type", "bad-section"],
)
def test_verify_rejects_a_mangled_unit(tmp_path: Path, original: str, mangled: str) -> None:
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    assert lines.count(original) == 1  # the setting itself, not a comment that mentions it
    lines[lines.index(original)] = mangled
    unit = _verifiable(tmp_path, "\n".join(lines) + "\n")
    assert _verify_problems(unit) != []


def test_verify_rejects_a_missing_binary(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8").replace(INSTALLED_BINARY, "/nonexistent/fleetward")
    unit = tmp_path / "fleetward.service"
    unit.write_text(text, encoding="utf-8")
    assert any("/nonexistent/fleetward" in p for p in _verify_problems(unit))


def test_unit_security_exposure_stays_low(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze", "Debian package 'systemd'")
    unit = _verifiable(tmp_path, UNIT.read_text(encoding="utf-8"))
    # --threshold is in tenths: exit status 1 above an exposure of 2.0 ("OK" is below 4.0).
    result = _run(tool, "security", "--offline=yes", "--threshold=20", str(unit))
    if "--offline" in result.stderr and "unrecognized option" in result.stderr:
        pytest.skip("this systemd-analyze has no `security --offline` (systemd < 250)")
    overall = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    assert result.returncode == 0, overall or result.stderr


def test_unit_has_the_settings_the_daemon_relies_on() -> None:
    settings = _unit_settings(UNIT.read_text(encoding="utf-8"))
    service = settings["Service"]

    def one(key: str) -> str:
        assert key in service, f"[Service] has no {key}="
        (value,) = service[key]
        return value

    # The daemon's sd_notify protocol: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC.
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec") == "120"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("Restart") == "on-failure"
    # Its own user; the state directory systemd creates is the one the daemon is given.
    assert one("User") == one("Group") == "fleetward"
    assert one("StateDirectory") == "fleetward"
    assert one("ConfigurationDirectory") == "fleetward"
    assert one("UMask") == "0022"
    argv = one("ExecStart").split()
    assert argv[:2] == [INSTALLED_BINARY, "daemon"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options == {
        "--config": "/etc/fleetward/fleetward.yaml",
        "--state-dir": "/var/lib/fleetward",
    }
    # Hardening.
    for key in [
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ]:
        assert one(key) == "yes", key
    assert one("ProtectSystem") == "strict"
    assert one("CapabilityBoundingSet") == ""
    assert one("SystemCallArchitectures") == "native"
    assert service["SystemCallFilter"][0] == "@system-service"
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert settings["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_and_daemon_config_agree() -> None:
    service = _unit_settings(UNIT.read_text(encoding="utf-8"))["Service"]
    config = _yaml(DAEMON_CONFIG)
    assert "--state-dir /var/lib/fleetward" in service["ExecStart"][0]
    assert config["state-dir"] == "/var/lib/fleetward"
    for key in ("webhook-secret-file", "api-token-file"):
        assert config[key].startswith("/etc/fleetward/"), key  # ConfigurationDirectory=


# --- the daemon's example configuration ---------------------------------------------------------


def test_daemon_config_has_every_key_with_a_sensible_value() -> None:
    config = _yaml(DAEMON_CONFIG)
    assert set(config) == DAEMON_KEYS
    for key in ("interval", "ready-max-age"):
        assert re.fullmatch(r"\d+[smh]", config[key]), (key, config[key])
    assert config["log-format"] in {"text", "json"}
    host, _, port = config["listen"].rpartition(":")
    assert host and 0 < int(port) < 65536


def test_daemon_reads_the_example_config() -> None:
    """The daemon's own config reader accepts the example and keeps every key of it."""
    from fleetward.daemon.config import read_config_file

    values = read_config_file(str(DAEMON_CONFIG))
    assert {name.replace("_", "-") for name in values} == DAEMON_KEYS
    assert values["interval"] == 60
    assert values["ready_max_age"] == 600


def test_daemon_config_keys_are_daemon_flags() -> None:
    """Every key of the example config is one of `fleetward daemon`'s flags."""
    result = _run(sys.executable, "-m", "fleetward", "daemon", "--help")
    assert result.returncode == 0, result.stderr
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", result.stdout))
    missing = [
        key
        for key in sorted(DAEMON_KEYS)
        # A `-file` key may exist only in the config file, next to its inline flag.
        if f"--{key}" not in flags and f"--{key.removesuffix('-file')}" not in flags
    ]
    assert missing == [], f"keys of {DAEMON_CONFIG.name} that are no daemon flag: {missing}"


# --- Prometheus --------------------------------------------------------------------------------


def _promtool() -> str:
    return _tool("promtool", "Debian package 'prometheus'; .ci/run installs it when apt-get works")


def _copy_prometheus(tmp_path: Path) -> Path:
    for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    return tmp_path


def _mangle(path: Path, original: str, mangled: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(original) == 1
    path.write_text(text.replace(original, mangled, 1), encoding="utf-8")


def test_prometheus_config_passes_promtool() -> None:
    result = _run(_promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_rejects_a_mangled_prometheus_config(tmp_path: Path) -> None:
    promtool = _promtool()
    folder = _copy_prometheus(tmp_path)
    _mangle(folder / "prometheus.yml", "scrape_configs:", "scrape_config:")
    assert _run(promtool, "check", "config", str(folder / "prometheus.yml")).returncode != 0
    # The rule file it names must exist too.
    _mangle(folder / "prometheus.yml", "scrape_config:", "scrape_configs:")
    (folder / "alerts.yml").unlink()
    assert _run(promtool, "check", "config", str(folder / "prometheus.yml")).returncode != 0


def test_alert_rules_pass_promtool() -> None:
    result = _run(_promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("original", "mangled"),
    [
        ("expr: fleetward_drift_objects > 0", "expr: fleetward_drift_objects >"),
        ('summary: "fleetward on {{ $labels.instance }} is down"', 'summary: "{{ $labels.x }"'),
    ],
    ids=["bad-promql", "bad-template"],
)
def test_promtool_rejects_mangled_rules(tmp_path: Path, original: str, mangled: str) -> None:
    promtool = _promtool()
    folder = _copy_prometheus(tmp_path)
    _mangle(folder / "alerts.yml", original, mangled)
    assert _run(promtool, "check", "rules", str(folder / "alerts.yml")).returncode != 0


def test_alert_rule_unit_tests_pass() -> None:
    # promtool reads rule_files relative to the test file, so run it from anywhere.
    result = _run(_promtool(), "test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests really evaluate the rules: an alert that can no longer fire fails them."""
    promtool = _promtool()
    folder = _copy_prometheus(tmp_path)
    _mangle(
        folder / "alerts.yml",
        "expr: fleetward_manifest_errors > 0",
        "expr: fleetward_manifest_errors > 5",
    )
    result = _run(promtool, "test", "rules", str(folder / "alerts_test.yml"))
    assert result.returncode != 0
    assert "FleetwardManifestErrors" in result.stdout + result.stderr


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def test_alerts_use_only_exported_metrics_and_tell_what_to_look_at() -> None:
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        name = rule["alert"]
        for metric in re.findall(r"\bfleetward_[a-z_]+", rule["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert metric in METRICS or base in METRICS, f"{name}: unknown metric {metric}"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert set(rule["annotations"]) >= {"summary", "description"}, name
    down = next(rule for rule in rules if rule["alert"] == "FleetwardDown")
    assert 'up{job="fleetward"}' in down["expr"]
    descriptions = " ".join(rule["annotations"]["description"] for rule in rules)
    assert "summary.json" in descriptions
    assert "fleetward operations list" in descriptions


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    tests = _yaml(PROMETHEUS / "alerts_test.yml")["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing == ALERTS
    assert quiet == ALERTS


def test_prometheus_scrapes_the_daemons_listen_address() -> None:
    config = _yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "fleetward"]
    assert job["scrape_interval"] == "15s"
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    assert targets == [_yaml(DAEMON_CONFIG)["listen"]] == ["127.0.0.1:9477"]
