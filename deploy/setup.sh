#!/usr/bin/env bash
# Installs what the demo and the end-to-end tests need on a Debian machine:
# iproute2, iptables, hping3, curl, iperf3, tcpdump (and coreutils' timeout),
# and clang, llvm and libbpf-dev, with which `make generate` and a test
# rebuild the BPF SYN stage (internal/synstage).
# Idempotent: installs only what is missing, runs apt-get update at most once.
set -euo pipefail

# command → Debian package
declare -A pkg=(
	[ip]=iproute2
	[iptables]=iptables
	[ip6tables]=iptables
	[hping3]=hping3
	[curl]=curl
	[iperf3]=iperf3
	[tcpdump]=tcpdump
	[timeout]=coreutils
	[clang]=clang
	[llvm-strip]=llvm
)

missing=()
for cmd in "${!pkg[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/sbin/$cmd" ]; then
		missing+=("${pkg[$cmd]}")
	fi
done
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all tools present"
	exit 0
fi
# Unique package names, sorted.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if ! command -v apt-get >/dev/null 2>&1; then
	echo "setup: missing ${missing[*]} and no apt-get; install them by hand" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo="sudo"
	else
		echo "setup: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
# Update the package lists once, unless they are already there.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
	$sudo apt-get update
fi
echo "setup: installing ${missing[*]}"
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
	# Stale lists: refresh once and try again.
	$sudo apt-get update
	$sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
