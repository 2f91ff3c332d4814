"""compose.yaml starts the real stack: MongoDB as a replica set, Redis, two gigql
instances in production mode and a proxy in front, each with a healthcheck.

No container engine runs here, so the stack is checked the way `docker compose config`
and the Compose Specification would check it, plus the rules of our own that a
production stack depends on; and gigql is run with exactly the environment a container
of the stack gets, to show the settings it is given start it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.embedded import free_port
from tests.support.deployment import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    UndefinedVariable,
    compose_file,
    compose_variables,
    env_example_values,
    env_file_lines,
    image_environment,
    interpolate,
    linter,
    required_variables,
    secret_setting_variables,
    service_environment,
    setting_variables,
)
from tests.support.gigql_process import assert_one_line_error, gigql_env, run_gigql

COMPOSE_SPEC = "vendor.compose-spec"
"""The Compose Specification's JSON schema, as check-jsonschema ships it."""
JWT_SECRET = "a-production-secret-of-at-least-32-bytes"
EXACT_TAG = re.compile(r"[a-z0-9][a-z0-9./_-]*:\d+\.\d+\.\d+(-[a-z0-9.]+)*")
"""An image named down to its patch release (`mongo:8.0.29-noble`), never a moving tag."""


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: nothing here uses the test database."""


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose_file()["services"]
    return found


def one_shot(service: dict[str, Any]) -> bool:
    """A job that runs to its end (mongodb-init), not a service that keeps running."""
    return service.get("restart") == "no"


def check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    command = [linter("check-jsonschema", "check-jsonschema")]
    return subprocess.run(
        [*command, "--builtin-schema", COMPOSE_SPEC, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- what `docker compose config` checks ----------------------------------------------


def test_compose_yaml_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    as_written = check_compose_spec(COMPOSE_FILE)
    assert as_written.returncode == 0, as_written.stdout + as_written.stderr
    # And as compose reads it, with the variables of .env.example put in.
    interpolated = tmp_path / "compose.yaml"
    interpolated.write_text(yaml.safe_dump(compose_file()))
    result = check_compose_spec(interpolated)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_what_compose_would(tmp_path: Path) -> None:
    """The validator reads the real schema: a healthcheck with a misspelt key fails."""
    broken = compose_file()
    broken["services"]["redis"]["healthcheck"]["intervall"] = "10s"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = check_compose_spec(path)
    assert result.returncode != 0
    assert "intervall" in result.stdout + result.stderr


def test_every_variable_compose_yaml_uses_is_defaulted_or_in_env_example() -> None:
    """Compose turns an undefined variable into an empty string with only a warning."""
    text = COMPOSE_FILE.read_text()
    interpolate(text, env_example_values())  # raises on an undefined one
    # Those without a default are the operator's to set, so the example sets them.
    assert required_variables(text) <= set(env_example_values())
    with pytest.raises(UndefinedVariable):
        interpolate("${GIGQL_NOT_DEFINED_ANYWHERE}", env_example_values())


def test_every_variable_named_for_gigql_is_a_real_setting() -> None:
    """A misspelt name would be ignored by gigql (its settings ignore unknown names)."""
    known = setting_variables()
    stack_only = compose_variables(COMPOSE_FILE.read_text())  # read by compose itself
    named = {name for name, _, _ in env_file_lines()} | set(
        service_environment(services()["gigql"])
    )
    assert named, "no variable found: the parsing broke"
    assert sorted(named - known - stack_only) == []
    assert not stack_only & known, "a compose variable must not look like a gigql setting"
    assert not any(name.startswith("GIGQL_") for name in stack_only)


# --- the rules of our own -------------------------------------------------------------


def test_every_image_is_pinned_to_a_release() -> None:
    for name, service in services().items():
        if "build" in service:
            # Built here, from the Dockerfile whose base image is pinned itself.
            assert service["build"]["context"] == "."
            assert not service["image"].endswith(":latest"), name
            continue
        image = service["image"]
        assert EXACT_TAG.fullmatch(image), f"{name}: {image} is not pinned to a release"
    base_images = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert len(base_images) == 1 and EXACT_TAG.fullmatch(base_images[0]), base_images


def test_every_service_has_a_healthcheck_and_starts_after_what_it_needs_is_healthy() -> None:
    stack = services()
    for name, service in stack.items():
        if one_shot(service):
            assert "healthcheck" not in service, name
        else:
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
            assert service["restart"] == "unless-stopped", name
        for needed, how in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully"
                if one_shot(stack[needed])
                # The replica-set job needs mongod started, not healthy: healthy is its work.
                else "service_started"
                if one_shot(service)
                else "service_healthy"
            )
            assert how["condition"] == expected, f"{name} -> {needed}"
    assert set(stack["gigql"]["depends_on"]) == {"mongodb", "mongodb-init", "redis"}
    assert set(stack["proxy"]["depends_on"]) == {"gigql"}


def test_gigql_runs_in_production_and_scales_out() -> None:
    gigql = services()["gigql"]
    environment = service_environment(gigql)
    assert environment["GIGQL_ENVIRONMENT"] == "production"
    assert gigql["deploy"]["replicas"] >= 2
    # The secrets come from the operator's .env, which must exist; none is written here.
    assert gigql["env_file"] == [{"path": ".env", "required": True}]
    assert not set(environment) & secret_setting_variables()
    # Every instance reaches the same database and broker, by their service names.
    assert environment["MONGODB_URL"].startswith("mongodb://mongodb:27017/")
    assert environment["REDIS_URL"].startswith("redis://redis:6379")
    # Only the proxy publishes a port: instances are reached through it.
    assert "ports" not in gigql
    assert [name for name, s in services().items() if "ports" in s] == ["proxy"]


def test_mongodb_is_a_replica_set_that_is_initiated_once_and_waited_for() -> None:
    stack = services()
    command = stack["mongodb"]["command"]
    replica_set = command[command.index("--replSet") + 1]
    assert f"replicaSet={replica_set}" in service_environment(stack["gigql"])["MONGODB_URL"]
    # Healthy only with a primary, which is what gigql waits for (transactions need one).
    assert "isWritablePrimary" in " ".join(stack["mongodb"]["healthcheck"]["test"])

    init = stack["mongodb-init"]
    assert init["image"] == stack["mongodb"]["image"]
    [mount] = init["volumes"]
    source, target, mode = mount.split(":")
    assert mode == "ro" and target in init["command"]
    script = (ROOT / source).read_text()
    assert f"const REPLICA_SET = '{replica_set}';" in script
    assert "const MEMBER = 'mongodb:27017';" in script
    # Idempotent: it initiates only when the server says it is not initiated yet, and any
    # other answer ends the job with an error instead.
    status = script.index("replSetGetStatus")
    handler = script.index("if (error.codeName !== 'NotYetInitialized') throw error;")
    assert status < handler < script.index("replSetInitiate")
    assert script.count("replSetInitiate") == 1
    # It ends only once there is a primary, so completing means the set is usable.
    assert script.rstrip().endswith("print(`replica set ${REPLICA_SET} has a primary`);")
    assert "isWritablePrimary" in script


def test_the_replica_set_script_parses(tmp_path: Path) -> None:
    """mongosh runs it as JavaScript: a syntax error would fail the job on every `up`."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed (it only checks the script's syntax)")
    script = tmp_path / "replica-set.js"
    script.write_text((ROOT / "deploy" / "mongodb" / "replica-set.js").read_text())
    result = subprocess.run(
        [node, "--check", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    script.write_text(script.read_text().replace("for (;;) {", "for (;;) {{"))
    broken = subprocess.run([node, "--check", str(script)], capture_output=True, timeout=60)
    assert broken.returncode != 0


def test_state_lives_in_named_volumes_and_bind_mounts_are_read_only_repository_files() -> None:
    stack = compose_file()
    declared = set(stack["volumes"])
    used = set()
    for name, service in stack["services"].items():
        for mount in service.get("volumes", []):
            source, _target, *options = mount.split(":")
            if source.startswith("./"):
                assert options == ["ro"], f"{name}: {mount}"
                assert (ROOT / source).is_file(), f"{name}: {source} is not in the repository"
            else:
                assert source in declared, f"{name}: {source} is not a named volume"
                used.add(source)
    assert used == declared
    mongodb = [m.split(":")[1] for m in stack["services"]["mongodb"]["volumes"]]
    assert {"/data/db", "/data/configdb"} <= set(mongodb)


def test_gigql_trusts_forwarded_addresses_from_the_proxy_alone() -> None:
    stack = compose_file()
    proxy_address = stack["services"]["proxy"]["networks"]["edge"]["ipv4_address"]
    trusted = service_environment(stack["services"]["gigql"])["GIGQL_TRUSTED_PROXIES"]
    assert trusted == proxy_address
    [subnet] = [c["subnet"] for c in stack["networks"]["edge"]["ipam"]["config"]]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)
    # The database and the broker are on a network with no way out and no other member.
    assert stack["networks"]["backend"]["internal"] is True
    for name in ("mongodb", "mongodb-init", "redis"):
        assert stack["services"][name]["networks"] == ["backend"], name
    caddyfile = (ROOT / "deploy" / "caddy" / "Caddyfile").read_text()
    assert "dynamic a gigql 8000" in caddyfile
    # Caddy drops a client's own X-Forwarded-For unless told to trust a proxy before it.
    assert "trusted_proxies" not in caddyfile


# --- the operator's .env --------------------------------------------------------------


def test_env_example_holds_no_secret() -> None:
    secrets = secret_setting_variables()
    written = {name: value for name, value, _ in env_file_lines() if name in secrets}
    assert written, "the example documents the secrets"
    assert {name: value for name, value in written.items() if value} == {}


def _container_environment(env_file: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """What a gigql container of the stack gets: the image's ENV, then the operator's
    .env, then compose.yaml's `environment`; listening on a free loopback port here."""
    env = gigql_env()
    env.update(image_environment())
    env.update(env_file)
    env.update(service_environment(services()["gigql"]))
    env.update(
        GIGQL_HOST="127.0.0.1", GIGQL_PORT=str(free_port()), GIGQL_DATA_DIR=str(tmp_path / "d")
    )
    return env


def _uncommented(*lines: str) -> dict[str, str]:
    """`.env.example` with the given commented-out lines turned on, as README says."""
    values = env_example_values()
    shown = {f"{name}={value}": (name, value) for name, value, c in env_file_lines() if c}
    for line in lines:
        name, value = shown[line]  # a KeyError: the example no longer shows this line
        values[name] = value
    return values


async def test_env_example_as_shipped_is_refused_in_production(tmp_path: Path) -> None:
    env = _container_environment(env_example_values(), tmp_path)
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "GIGQL_JWT_SECRET must be set", "in production")


async def test_env_example_filled_in_for_a_demo_starts_gigql(tmp_path: Path) -> None:
    """Every setting check passes; serving stops only at the database, whose name
    resolves inside the stack alone."""
    env_file = _uncommented("GIGQL_ALLOW_SANDBOX_PAYMENTS=true", "GIGQL_PUSH_BACKEND=log")
    env_file["GIGQL_JWT_SECRET"] = JWT_SECRET
    env = _container_environment(env_file, tmp_path)
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "cannot reach the database at MONGODB_URL")


async def test_env_example_filled_in_with_web_push_keys_starts_gigql(tmp_path: Path) -> None:
    # README has it run in a container of the stack before .env holds any secret.
    shipped = _container_environment(env_example_values(), tmp_path)
    keys = await asyncio.to_thread(run_gigql, "generate-vapid-keys", env=shipped, cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    env_file = _uncommented(
        "GIGQL_ALLOW_SANDBOX_PAYMENTS=true", "GIGQL_VAPID_SUBJECT=mailto:ops@example.com"
    )
    for line in keys.stdout.split():
        name, _, value = line.partition("=")
        env_file[name] = value
    env_file["GIGQL_JWT_SECRET"] = JWT_SECRET
    env = _container_environment(env_file, tmp_path)
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "cannot reach the database at MONGODB_URL")


def test_env_files_stay_out_of_git_and_images() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".env.*" in ignored
    assert ENV_EXAMPLE.is_file()


def test_readme_names_every_service_and_image_of_the_stack() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Running the real stack") :]
    for name, service in services().items():
        assert f"| `{name}` |" in section, name
        if "build" not in service:
            assert f"`{service['image']}`" in section, service["image"]
