#!/usr/bin/env bash
# Run a command with DDS confined to loopback on a private domain, and no model-hub access.
# Used by `make test`, `make demo` and `make bench`: nothing they start may send or receive DDS
# traffic beyond loopback. The Fast DDS profile config/fastdds_loopback.xml allows only shared
# memory and UDP on 127.0.0.1 (no multicast); SYSTEM_DEFAULT keeps the rmw from adding its own
# all-interfaces transports, which ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST would do
# (see src/dualtalk_ros/dualtalk_ros/loopback.py). A robot's own shell, without this script,
# keeps Fast DDS's normal network behaviour.
set -euo pipefail
PROFILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/fastdds_loopback.xml"
[[ -f "$PROFILE" ]] || { echo "with_ros_env.sh: $PROFILE missing; refusing to run with DDS on all interfaces" >&2; exit 1; }
export FASTDDS_DEFAULT_PROFILES_FILE="$PROFILE" FASTRTPS_DEFAULT_PROFILES_FILE="$PROFILE"
export ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT
unset ROS_STATIC_PEERS
# a private domain per run (1..101: the range ROS recommends on Linux, clear of ephemeral ports), unless the caller chose one
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 101) + 1 ))}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$@"
