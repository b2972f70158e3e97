#!/bin/sh
# Chromium in a network namespace of its own (see launchBrowser in
# browser.ts): Chromium cancels its in-flight requests with
# net::ERR_NETWORK_CHANGED whenever an address appears or disappears in its
# network namespace, and Docker does that on the host for every container it
# starts or stops. In a fresh namespace nothing changes;
# chromium-netns.mjs relays the browser's traffic back out to the host's
# loopback.
set -e
exec unshare --net -- "${HANGAR_BROWSER_NODE:-node}" "$(dirname "$0")/chromium-netns.mjs" "$@"
