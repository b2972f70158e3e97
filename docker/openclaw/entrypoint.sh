#!/bin/sh
# Hangar's OpenClaw agent: fetch this agent's openclaw.json (and its SOUL.md)
# from Hangar, then become the gateway. exec: the gateway is PID 1's process,
# so Docker's stop signal reaches it directly.
set -eu
node /app/fetch-config.mjs
exec node /opt/openclaw/node_modules/openclaw/openclaw.mjs gateway run --bind lan --auth token --port 18789
