#!/usr/bin/env bash
# Run a command with DDS confined to loopback on a private domain, and no model-hub access.
# Used by `make test`, `make demo` and `make bench`: nothing they start may send DDS traffic
# beyond loopback.
set -euo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_STATIC_PEERS
# a private domain per run (1..101: the range ROS recommends on Linux, clear of ephemeral ports), unless the caller chose one
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 101) + 1 ))}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$@"
