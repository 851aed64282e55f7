#!/usr/bin/env bash
# make bench: measure aws-auth-guardian against the project's own targets
# (never loosened) and write docs/benchmarks.md.
# `make bench` builds bin/manager and bin/controlplane first; this script
# does the rest. It builds the bench program (test/bench, a module of its own
# because it holds the real aws-iam-authenticator), which starts a local
# kube-apiserver and etcd, installs the CRD, runs bin/manager as its own
# process, measures, prints the figures and rewrites docs/benchmarks.md.
# Arguments go to the bench program (for example --reps 50 --out /tmp/b.md).
set -euo pipefail
start=$(date +%s.%N)
cd "$(dirname "$0")/.."

for f in bin/manager bin/controlplane/kube-apiserver bin/controlplane/etcd; do
	[[ -x $f ]] || { echo "$f is missing: run 'make controlplane build' first (make bench does)" >&2; exit 1; }
done
command=hack/bench.sh
[[ -n ${MAKELEVEL:-} ]] && command="make bench"

echo ">> building the bench (test/bench)" >&2
(cd test/bench && go build -o ../../bin/bench .)

# The whole run must stay under 15 minutes, the build above included; the
# bench stops its last steps in time to write the report.
budget=$((14 * 60 - ${SECONDS}))
mkdir -p bin/bench-run
# BENCH_SIZES (e.g. 1000,3000): the access entry sizes converged from
# nothing at a raised rate limit, with the drift step at the first. They
# do not fit the 15 minutes (about 3 and 4 minutes more), so they are asked
# for, and get the time they need on top of the budget.
sizes=${BENCH_SIZES:-}
[[ -n $sizes ]] && budget=$((budget + 10 * 60))
bin/bench --root "$PWD" --command "$command" --script-start "$start" --timeout "${budget}s" --eks-sizes "$sizes" "$@" &
bench=$!
trap 'kill -TERM "$bench" 2>/dev/null || true' INT TERM
rc=0
wait "$bench" || rc=$?
# After a signal, wait for the bench to stop what it started.
if kill -0 "$bench" 2>/dev/null; then wait "$bench" || rc=$?; fi

# Should the bench have died without cleaning up, end exactly the processes
# it recorded (etcd, kube-apiserver, bin/manager), by pid.
pids=bin/bench-run/pids
if [[ -f $pids ]]; then
	while read -r pid; do
		[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || continue
		if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'bin/(controlplane/(kube-apiserver|etcd)|manager)'; then
			kill "$pid" 2>/dev/null || true
		fi
	done <"$pids"
	rm -f "$pids"
fi
exit "$rc"
