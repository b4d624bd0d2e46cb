"""deploy/compose.yaml cannot run here (no container engine): what can be checked is.

It parses; it has the production topology (Kafka in KRaft mode, a MongoDB
replica set, Redis, the web tier, one worker group per service, one beat);
every command it runs exists in the project with the options it passes;
every environment variable it sets is one the code reads; the files it
mounts and the Dockerfile copies exist.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands

from shopsite import databases
from shopsite.services import BY_NAME, SERVICES, parse_service_names
from tests.unit.deploy.support import DEPLOY, ROOT, environment_names_read

pytestmark = pytest.mark.backends("sqlite")

COMPOSE = DEPLOY / "compose.yaml"
APP_IMAGE = "shopsite:latest"


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def app_services() -> dict[str, dict]:
    return {name: s for name, s in services().items() if s.get("image") == APP_IMAGE}


def command(name: str) -> list[str]:
    cmd = services()[name]["command"]
    assert isinstance(cmd, list), f"{name}: exec form (a list), so nothing is left to a shell"
    return cmd


def workers() -> dict[str, list[str]]:
    return {name: command(name) for name in app_services() if command(name)[:1] == ["celery"]
            and "worker" in command(name)}


def option(cmd: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in cmd if a.startswith(f"{name}=")), None)


@functools.cache
def help_text(*argv: str) -> str:
    done = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_it_parses_and_every_app_process_is_built_from_the_repository():
    assert set(services()) >= {"web", "beat", "redis", "migrate", "topics"}
    build = next(iter(app_services().values()))["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source


def test_kafka_runs_in_kraft_mode_with_every_node_a_voter():
    nodes = {name: s for name, s in services().items() if s.get("image", "").startswith("apache/kafka")}
    assert len(nodes) == 3
    assert not any("zookeeper" in str(s.get("image", "")) for s in services().values())
    for name, node in nodes.items():
        env = node["environment"]
        assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
        voters = {v.split("@")[1].split(":")[0] for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
        assert voters == set(nodes)
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
    app_env = services()["web"]["environment"]
    assert {h.split(":")[0] for h in app_env["KAFKA_BOOTSTRAP_SERVERS"].split(",")} == set(nodes)
    assert int(app_env["KAFKA_TOPIC_REPLICATION"]) <= len(nodes)


def test_mongodb_is_a_replica_set_the_services_connect_to():
    members = {name for name, s in services().items() if s.get("image", "").startswith("mongo")
               and "mongod" in s.get("command", [])}
    assert len(members) == 3
    for name in members:
        cmd = services()[name]["command"]
        assert cmd[cmd.index("--replSet") + 1] == "rs0"
    init = " ".join(services()["mongo-init"]["command"])
    assert set(re.findall(r'host: "(\w+):27017"', init)) == members and '_id: "rs0"' in init
    uri = urlsplit(services()["web"]["environment"]["MONGODB_URI"])
    assert {h.split(":")[0] for h in uri.netloc.split(",")} == members and "replicaSet=rs0" in uri.query
    assert services()["web"]["environment"]["SHOPSITE_DB"] in databases.BACKENDS


def test_one_worker_group_per_service_and_exactly_one_beat():
    groups = {name: option(cmd, "--services") for name, cmd in workers().items()}
    assert sorted(s for spec in groups.values() for s in spec.split(",")) == sorted(s.name for s in SERVICES)
    for name, spec in groups.items():
        (service,) = parse_service_names(spec)
        assert name == f"{service.name}-worker"
        assert services()[name]["environment"]["SHOPSITE_SERVICE"] == service.name
    beats = [name for name in app_services() if command(name)[:1] == ["celery"] and "beat" in command(name)]
    assert beats == ["beat"] and services()["beat"]["deploy"]["replicas"] == 1
    assert "SHOPSITE_SERVICE" not in services()["beat"]["environment"]  # it schedules every service


def test_each_services_api_serves_its_workers_metrics_and_is_scraped():
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]}
    for service in SERVICES:
        api, worker = services()[f"{service.name}-api"], services()[f"{service.name}-worker"]
        cmd = command(f"{service.name}-api")
        assert cmd[cmd.index("-p") + 1] == str(service.web_port)
        assert api["environment"]["SHOPSITE_SERVICE"] == service.name
        # Same PID namespace and metrics directory: the API's /metrics sums the workers' files.
        assert worker["pid"] == f"service:{service.name}-api"
        assert api["volumes"] == worker["volumes"] == [f"metrics-{service.name}:/run/shopsite/metrics"]
        assert f"{service.name}-api:{service.web_port}" in targets
    for mount in services()["prometheus"]["volumes"] + services()["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


@pytest.mark.parametrize("name", sorted(app_services()))
def test_every_command_exists_in_the_project(name):
    cmd = command(name)
    if cmd[:2] == ["python", "manage.py"]:
        assert cmd[2] in get_commands(), f"manage.py {cmd[2]}"
    elif cmd[:2] == ["python", "-m"]:
        module = cmd[2]
        assert importlib.util.find_spec(module) is not None, module
        text = help_text("-m", module)
        for arg in cmd[3:]:
            if arg.startswith("-"):
                assert re.search(rf"(^|[\s\[,]){re.escape(arg)}[\s\],]", text), f"{module} {arg}"
    elif cmd[0] == "celery":
        assert cmd[1:3] == ["-A", "shopsite"]
        assert importlib.import_module("shopsite.celery").app.main == "shopsite"
        sub = next(a for a in cmd[3:] if not a.startswith("-"))
        assert sub in {"worker", "beat"}
        top = help_text("-m", "celery", "-A", "shopsite")
        text = help_text("-m", "celery", "-A", "shopsite", sub)
        for arg in cmd[3:]:
            if arg.startswith("--"):
                flag = arg.split("=", 1)[0]
                where = top if cmd.index(arg) < cmd.index(sub) else text
                assert flag in where, f"celery {sub} {flag}"
        if sub == "worker":
            parse_service_names(option(cmd, "--services"))
    else:
        pytest.fail(f"{name}: unknown kind of command {cmd}")


@pytest.mark.parametrize("name", sorted(app_services()))
def test_every_environment_variable_set_is_one_the_code_reads(name):
    env = services()[name]["environment"]
    unknown = set(env) - environment_names_read()
    assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
    assert {"SHOPSITE_DB", "MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DJANGO_SECRET_KEY"} <= set(env)
    if "SHOPSITE_SERVICE" in env:
        assert env["SHOPSITE_SERVICE"] in BY_NAME


def test_processed_events_outlive_the_topics():
    kafka_env = services()["kafka1"]["environment"]
    app_env = services()["web"]["environment"]
    assert float(app_env["PROCESSED_EVENTS_RETENTION_HOURS"]) >= 2 * float(kafka_env["KAFKA_LOG_RETENTION_HOURS"])
