"""The deployment files say what the code accepts (issue #16): every RESET_MAILBOT_* variable
they set is a real setting, the schema is upgraded before a daemon starts, and the health
check asks the daemon's own /healthz on the port the image listens on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from reset_mailbot.config import ENV_PREFIX, SECTIONS

ROOT = Path(__file__).resolve().parents[2]
FILES = ["Dockerfile", "deploy/compose.yaml", "deploy/kubernetes.yaml",
         "deploy/reset-mailbot.service"]
METRIC = re.compile(r"\b(?:reset_mailbot_\w+|process_\w+)")


def test_every_variable_the_deployment_files_set_is_a_setting() -> None:
    seen = set()
    for name in FILES:
        for variable in re.findall(rf"{ENV_PREFIX}[A-Z_]+", (ROOT / name).read_text()):
            if variable == f"{ENV_PREFIX}CONFIG":  # the config file's path, not a setting
                continue
            section, _, key = variable.removeprefix(ENV_PREFIX).lower().partition("__")
            assert section in SECTIONS, (name, variable)
            assert key in SECTIONS[section].model_fields, (name, variable)
            seen.add(variable)
    assert f"{ENV_PREFIX}METRICS__LISTEN" in seen and f"{ENV_PREFIX}HA__INSTANCE_ID" in seen


def _dockerfile() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return {line.split(None, 1)[0]: line.split(None, 1)[1] for line in text.splitlines()
            if line.strip() and not line.startswith("#")}


def test_the_image_listens_where_it_is_checked_and_exposed() -> None:
    lines = _dockerfile()
    assert "RESET_MAILBOT_METRICS__LISTEN=0.0.0.0:9464" in lines["ENV"]
    assert "RESET_MAILBOT_CONSOLE__LISTEN=0.0.0.0:8080" in lines["ENV"]
    assert lines["EXPOSE"].split() == ["9464", "8080"]
    command = json.loads(lines["HEALTHCHECK"].split("CMD", 1)[1])
    assert command[0] == "python" and "http://127.0.0.1:9464/healthz" in command[2]


def test_the_schema_is_upgraded_before_any_daemon_runs() -> None:
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())["services"]
    assert compose["migrate"]["command"] == ["db", "upgrade"]
    daemon = compose["reset-mailbot"]
    assert daemon["command"] == ["run"] and daemon["deploy"]["replicas"] == 2
    assert daemon["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    console = compose["console"]
    assert console["command"] == ["console"]
    assert console["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert console["ports"] == ["127.0.0.1:8080:8080"]  # only to the TLS proxy on the host
    assert set(console["secrets"]) <= set(yaml.safe_load(
        (ROOT / "deploy/compose.yaml").read_text())["secrets"])
    [deployment] = yaml.safe_load_all((ROOT / "deploy/kubernetes.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert [c["args"] for c in pod["initContainers"]] == [["db", "upgrade"]]
    [container] = pod["containers"]
    assert container["args"] == ["run"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9464}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    unit = (ROOT / "deploy/reset-mailbot.service").read_text()
    assert re.search(r"^ExecStartPre=\S+ db upgrade$", unit, re.MULTILINE)
    assert re.search(r"^ExecStart=\S+ run$", unit, re.MULTILINE)


def _exported_names() -> set[str]:
    """Every sample name the daemon's registry exports (histogram buckets included)."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from reset_mailbot.service.metrics import Metrics

    metrics = Metrics(poll_interval_seconds=30, last_successful_poll=lambda: None)
    metrics.decision_seconds.observe(0.1)  # labelled series appear once observed
    metrics.messages.labels(outcome="complete").inc()
    metrics.reasons.labels(outcome="rejected", reason="dkim_invalid").inc()
    metrics.replies.labels(kind="incomplete", result="sent").inc()
    metrics.executions.labels(result="failed", code="x").inc()
    text = generate_latest(metrics.registry).decode()
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_alerts_and_dashboard_name_only_metrics_the_daemon_exports() -> None:
    exported = _exported_names()
    for name in ("deploy/prometheus-alerts.yaml", "deploy/grafana-dashboard.json"):
        used = set(METRIC.findall((ROOT / name).read_text()))
        assert used, name
        assert used <= exported, (name, used - exported)
    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    assert len(dashboard["panels"]) >= 10
    assert all(panel["targets"][0]["expr"] for panel in dashboard["panels"])


def test_the_alert_rules_pass_promtool() -> None:
    """Debian's prometheus package (installed by scripts/install-test-deps.sh)."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/install-test-deps.sh"
    done = subprocess.run([promtool, "check", "rules", str(ROOT / "deploy/prometheus-alerts.yaml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_the_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    """`systemd-analyze verify` with the unit's command pointed at this installation's."""
    import shutil
    import subprocess
    import sys

    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing (Debian's systemd package)"
    command = Path(sys.executable).with_name("reset-mailbot")
    unit = tmp_path / "reset-mailbot.service"
    unit.write_text((ROOT / "deploy/reset-mailbot.service").read_text().replace(
        "/opt/reset-mailbot/bin/reset-mailbot", str(command)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
