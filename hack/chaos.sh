#!/usr/bin/env bash
# make chaos: the long run of test/chaos. The operator runs as its real
# binary against the local control plane (bin/controlplane) under 1,000
# random operations, 20 kill -9, 5 leader takeovers (at the default 15s
# lease), 3 control plane restarts and a denied create; and, with the
# access entry target on against the fake EKS (internal/testing/awsfake),
# 500 random mapping changes with 10 kill -9 and EKS faults (throttling,
# server errors, slow answers), checking every state EKS went through for
# a cluster admin. Then the figures are printed.
#
# CHAOS_MANAGER_BINARY=bin/manager uses a binary just built (make build);
# otherwise the test builds one. CHAOS_FLAGS adds or overrides flags, e.g.
# CHAOS_FLAGS="-chaos.seed=7". The full log is kept in bin/chaos.log.
set -euo pipefail
cd "$(dirname "$0")/.."

export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$PWD/bin/controlplane}"
[[ -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]] ||
	{ echo "no control plane in $KUBEBUILDER_ASSETS: run make controlplane first" >&2; exit 1; }

log=bin/chaos.log
mkdir -p bin
flags=(
	-chaos.ops=1000
	-chaos.kills=20
	-chaos.takeovers=5
	-chaos.apirestarts=3
	-chaos.lease-duration=15s # the operator's default, as installed
	-chaos.ae-ops=500
	-chaos.ae-kills=10
)
# shellcheck disable=SC2206 # word splitting of CHAOS_FLAGS is the point
flags+=(${CHAOS_FLAGS:-})

echo "chaos: go test ./test/chaos -count=1 -timeout 15m -v -args ${flags[*]}"
echo "chaos: full log in $log"
began=$(date +%s)
status=0
go test ./test/chaos -count=1 -timeout 15m -v -args "${flags[@]}" >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - began))

# The figures, then each scenario's verdict, then any failure in full.
echo
grep -E '^chaos:' "$log" || true
echo
grep -E '^(--- (PASS|FAIL)|PASS$|FAIL$|ok |FAIL\s)' "$log" || true
if [[ $status -ne 0 ]]; then
	echo
	echo "chaos: FAILED (exit $status) after ${elapsed}s; the failures:"
	grep -E -B2 -A12 '^\s+[a-z_]+_test\.go:[0-9]+: $|--- FAIL|panic:' "$log" | grep -v '^        {"level"' | head -200 || true
	exit "$status"
fi
echo "chaos: passed in ${elapsed}s ($(go version | cut -d' ' -f3), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ))"
