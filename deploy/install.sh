#!/usr/bin/env bash
# Installs synwall as a systemd service on a Debian-like machine:
#
#   /usr/local/bin/synwall               built from this tree
#   user and group synwall               system account, no shell, no home
#   /etc/synwall/policy.yaml             from deploy/policies/web-frontend.yaml,
#                                        only if there is none (edit it!)
#   /etc/systemd/system/synwall.service  deploy/systemd/synwall.service
#   /etc/sysctl.d/60-synwall.conf        deploy/sysctl/synwall.conf, only if
#                                        there is none (else *.conf.dist)
#
# It enables, starts and applies nothing: review the policy and the sysctl
# file, then `sysctl --system` and `systemctl enable --now synwall`.
# Idempotent: running it again rebuilds and replaces the binary and the unit,
# and keeps the policy and sysctl files that are there.
#
# Usage: deploy/install.sh [--dry-run] [--root DIR]
#   --dry-run   print what would be done, change nothing
#   --root DIR  install under DIR instead of / (staging, packaging, tests):
#               no user, no ownership changes, no systemctl
set -euo pipefail

usage() { sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; }

dry=0
root=""
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=1 ;;
	--root)
		[ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }
		root="${2%/}"
		shift
		;;
	--root=*) root="${1#--root=}"; root="${root%/}" ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/usr/local/bin/synwall"
etc="$root/etc/synwall"
policy="$etc/policy.yaml"
unit="$root/etc/systemd/system/synwall.service"
sysctl="$root/etc/sysctl.d/60-synwall.conf"

# run prints a command and, unless --dry-run, runs it.
run() {
	if [ "$dry" -eq 1 ]; then
		printf 'would run:'
	else
		printf '+'
	fi
	printf ' %q' "$@"
	echo
	[ "$dry" -eq 1 ] || "$@"
}
note() { echo "install.sh: $*"; }

if [ "$dry" -eq 0 ] && [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root (or try --dry-run, or --root DIR)" >&2
	exit 1
fi
for f in deploy/systemd/synwall.service deploy/sysctl/synwall.conf deploy/policies/web-frontend.yaml cmd/synwall/main.go; do
	[ -f "$src/$f" ] || { echo "install.sh: $src/$f missing; run from a synwall tree" >&2; exit 1; }
done

# owner USER:GROUP: ownership flags for install(1), none under --root.
owner() { [ -z "$root" ] && echo "-o ${1%%:*} -g ${1##*:}" || true; }

# 1. The binary, built into a temporary file and then installed over the old
# one (install(1) unlinks the old file first), so that a running daemon is
# not disturbed; `synwall restart` then re-executes the new file.
version="$(git -C "$src" describe --tags --always --dirty 2>/dev/null || echo dev)"
if [ "$dry" -eq 0 ]; then
	command -v go >/dev/null 2>&1 || { echo "install.sh: go not found in PATH" >&2; exit 1; }
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
else
	tmp="${TMPDIR:-/tmp}/synwall-build"
fi
run env -C "$src" go build -trimpath -ldflags "-X main.version=$version" -o "$tmp/synwall" ./cmd/synwall
run install -d -m 0755 "$(dirname "$bin")"
run install -m 0755 "$tmp/synwall" "$bin"

# 2. The service account.
if [ -n "$root" ]; then
	note "--root: not creating user synwall"
elif getent passwd synwall >/dev/null; then
	note "user synwall exists"
else
	run useradd --system --user-group --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin --comment "synwall SYN-flood gateway" synwall
fi

# 3. Configuration: readable by group synwall, never overwritten.
# shellcheck disable=SC2046
run install -d -m 0750 $(owner root:synwall) "$etc"
if [ -e "$policy" ]; then
	note "$policy exists; kept"
else
	# shellcheck disable=SC2046
	run install -m 0640 $(owner root:synwall) "$src/deploy/policies/web-frontend.yaml" "$policy"
	note "$policy is an example (web servers in 198.18.3.0/28): edit it before starting"
fi
if [ "$dry" -eq 0 ] && ! "$bin" check "$policy" >/dev/null; then
	note "warning: $policy does not validate (synwall check $policy)"
fi

# 4. The unit, replaced when it changed (local changes belong in a drop-in:
# systemctl edit synwall).
if [ -f "$unit" ] && cmp -s "$src/deploy/systemd/synwall.service" "$unit"; then
	note "$unit up to date"
else
	run install -d -m 0755 "$(dirname "$unit")"
	run install -m 0644 "$src/deploy/systemd/synwall.service" "$unit"
	if [ -z "$root" ] && [ -d /run/systemd/system ]; then
		run systemctl daemon-reload
	fi
fi

# 5. Kernel settings, never overwritten: a changed copy goes next to them as
# .dist (ignored by sysctl, which reads *.conf only).
run install -d -m 0755 "$(dirname "$sysctl")"
if [ ! -e "$sysctl" ]; then
	run install -m 0644 "$src/deploy/sysctl/synwall.conf" "$sysctl"
elif cmp -s "$src/deploy/sysctl/synwall.conf" "$sysctl"; then
	note "$sysctl up to date"
else
	note "$sysctl exists and differs; kept, new version as $sysctl.dist"
	run install -m 0644 "$src/deploy/sysctl/synwall.conf" "$sysctl.dist"
fi

cat <<EOF

Next steps:
  1. edit $policy          (synwall check $policy)
  2. review $sysctl, then: sysctl --system
  3. systemctl enable --now synwall
     metrics: curl -s http://127.0.0.1:9474/metrics | grep ^synwall_
  Upgrading a running synwall: the new binary takes over, keeping proxied
  connections and its PID, with
     synwall restart --pid-file /run/synwall/synwall.pid
  (or systemctl kill -s USR2 --kill-whom=main synwall); a changed unit needs
  systemctl restart synwall instead, which drops the proxied connections.
EOF
[ "$dry" -eq 1 ] && echo "(dry run: nothing was changed)"
exit 0
