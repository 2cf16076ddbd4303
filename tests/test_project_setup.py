"""The README's two commands are what the Makefile and CI run, and `make setup` is idempotent."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no code block"
    first = [ln.strip() for ln in blocks[0].splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return first


def test_readme_opens_with_exactly_the_two_commands():
    assert _readme_commands() == ["make demo", "make test"]
    # the commands come before any other section of the README
    text = (ROOT / "README.md").read_text()
    assert text.index("make demo") < text.index("\n## ")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert "make test" in commands, ".ci/run must run the README's test command"
    assert "export CI=true" in commands


def test_makefile_targets_set_up_the_venv_and_confine_dds():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        rule = re.search(rf"^{target}:(.*)\n((?:\t.*\n)+)", makefile, flags=re.M)
        assert rule, f"Makefile has no '{target}' rule"
        assert "setup" in rule.group(1).split(), f"'make {target}' must depend on setup"
        assert "with_ros_env.sh" in rule.group(2), f"'make {target}' must confine DDS"
    env_script = (ROOT / "scripts" / "with_ros_env.sh").read_text()
    assert "fastdds_loopback.xml" in env_script and "FASTDDS_DEFAULT_PROFILES_FILE" in env_script
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT" in env_script
    assert "ROS_DOMAIN_ID" in env_script


def test_tests_run_confined_to_loopback():
    from dualtalk_ros import loopback
    assert loopback.is_confined()
    assert 0 < int(os.environ["ROS_DOMAIN_ID"]) <= 101


def test_make_setup_twice_second_is_a_noop_check():
    if not (ROOT / os.environ.get("VENV", ".venv") / ".dualtalk-setup-stamp").exists():
        pytest.skip("not running inside a venv made by make setup")
    runs = [subprocess.run(["make", "-s", "setup"], cwd=ROOT, capture_output=True, text=True,
                           timeout=1800) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    second = runs[1].stdout
    assert "up to date" in second, second
    assert "installing" not in second and "building" not in second, second


def test_package_manifests_are_format3_with_valid_maintainers():
    import xml.etree.ElementTree as ET

    for pkg in ("dualtalk_core", "dualtalk_msgs", "dualtalk_ros"):
        tree = ET.parse(ROOT / "src" / pkg / "package.xml").getroot()
        assert tree.get("format") == "3", pkg
        assert tree.findtext("name") == pkg
        email = tree.find("maintainer").get("email")
        assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", email), (pkg, email)
