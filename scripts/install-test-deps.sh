#!/usr/bin/env bash
# Install the Debian packages the integration tests start for real:
# Dovecot (IMAP + LMTP), PostgreSQL and MariaDB, promtool (prometheus) that checks
# deploy/prometheus-alerts.yaml, and Chromium for the console's browser tests. Idempotent: when every
# package is already installed it does nothing (no apt-get update).
# No system daemon is started: the tests run private instances on free ports.
# With arguments, installs only those packages (`make demo` needs just Dovecot).
set -euo pipefail

if [[ $# -gt 0 ]]; then
    PACKAGES=("$@")
else
    PACKAGES=(dovecot-imapd dovecot-lmtpd postgresql mariadb-server iproute2 prometheus chromium)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-test-deps: all present (${PACKAGES[*]})"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi

echo "install-test-deps: installing ${missing[*]}"

# Keep postinst scripts from starting system daemons (they would take the
# standard ports). policy-rc.d exit 101 = "action forbidden"; restore any
# existing policy afterwards.
policy=/usr/sbin/policy-rc.d
backup=""
if [[ -e "$policy" ]]; then
    backup=$(mktemp)
    cp -p "$policy" "$backup"
fi
restore_policy() {
    if [[ -n "$backup" ]]; then
        cp -p "$backup" "$policy"
        rm -f "$backup"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
if ! apt-get -o DPkg::Lock::Timeout=300 update -qq; then
    echo "install-test-deps: apt-get update failed" >&2
    exit 1
fi
if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "install-test-deps: apt-get install ${missing[*]} failed" >&2
    exit 1
fi

for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        echo "install-test-deps: $pkg is still not installed ($status)" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
