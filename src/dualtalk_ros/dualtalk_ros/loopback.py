"""Loopback-only DDS for tests, CI, benchmarks and the demo (never for a robot's own launch).

``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` is not enough: rmw_fastrtps then *adds* its own
shared-memory and unrestricted UDPv4 transports, so every process still binds UDP sockets to
0.0.0.0 and to the machine's external address. Instead the Fast DDS profile
``config/fastdds_loopback.xml`` (SHM + UDPv4 allowed on 127.0.0.1 only, every locator on
127.0.0.1, no multicast, unicast discovery through initial peers on 127.0.0.1) is loaded through
``FASTDDS_DEFAULT_PROFILES_FILE``, and the discovery range is ``SYSTEM_DEFAULT``, which tells the
rmw to leave the profile's transports alone. ``scripts/with_ros_env.sh`` (shell) and
:func:`apply` (Python: ``tests/conftest.py``, benches) set the same variables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

PROFILE_NAME = "fastdds_loopback.xml"
DISCOVERY_RANGE = "SYSTEM_DEFAULT"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def profile_path() -> Path:
    """The installed/in-repo ``config/fastdds_loopback.xml`` (``FileNotFoundError`` if absent:
    running without it would silently fall back to Fast DDS's all-interfaces defaults)."""
    from .params import resolve_config_path

    return resolve_config_path(PROFILE_NAME).resolve()


def loopback_vars() -> dict[str, str]:
    """The environment variables that confine DDS to loopback."""
    path = str(profile_path())
    return {**{v: path for v in PROFILE_VARS}, "ROS_AUTOMATIC_DISCOVERY_RANGE": DISCOVERY_RANGE}


def apply(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set :func:`loopback_vars` in ``env`` (default ``os.environ``), drop static peers."""
    env = os.environ if env is None else env
    env.update(loopback_vars())
    env.pop("ROS_STATIC_PEERS", None)
    return env


def is_confined(env: MutableMapping[str, str] | None = None) -> bool:
    """Whether ``env`` (default ``os.environ``) loads the loopback profile as set by
    :func:`apply` / ``scripts/with_ros_env.sh``."""
    env = os.environ if env is None else env
    path = env.get("FASTDDS_DEFAULT_PROFILES_FILE", "")
    return (env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == DISCOVERY_RANGE
            and Path(path).name == PROFILE_NAME and Path(path).is_file())
