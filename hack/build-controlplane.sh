#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from Go modules into bin/ (this
# machine cannot download release binaries, so setup-envtest cannot either).
# It rebuilds only when a binary is missing or the pinned module versions
# or build flags changed; the Go build cache makes a rebuild after a
# version bump cheap.
#
# CONTROLPLANE_OUT (default bin/controlplane) builds elsewhere, to try a
# change of this script without touching the binaries others use.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/hack/controlplane"
out=${CONTROLPLANE_OUT:-$root/bin/controlplane}
k8s_version=v1.37.2
cmds=(etcd kube-apiserver kubectl)

minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
build_flags=(-trimpath -ldflags "$ldflags")

# The stamp is of what decides the binaries (the modules, the flags, the
# commands), not of this script's text: a new message here must not cost
# a rebuild. (With a warm Go build cache a rebuild is a relink: 22s seen.)
stamp=$({ cat "$src/go.mod" "$src/go.sum"; echo "CGO_ENABLED=0 ${build_flags[*]} ${cmds[*]}"; } | sha256sum | cut -d' ' -f1)
current() { [[ $(cat "$out/.stamp" 2>/dev/null) == "$stamp" ]]; }
kubectl_link="$(dirname "$out")/kubectl"
if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -x "$out/kubectl" && -x "$kubectl_link" ]] && current; then
	exit 0
fi

# heartbeat prints the elapsed time every 30s while $1 builds, so that a
# build that takes 20 minutes on a loaded machine does not look hung. It
# ends when killed, when this script is gone, or after two hours.
heartbeat() {
	local start=$SECONDS sleeper=
	# Killed, it takes its sleep with it rather than leave it behind.
	trap '[[ -z $sleeper ]] || kill "$sleeper" 2>/dev/null; exit 0' TERM
	for _ in $(seq 240); do
		sleep 30 &
		sleeper=$!
		wait "$sleeper"
		kill -0 $$ 2>/dev/null || return 0
		echo ">>   still building $1: $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s so far" >&2
	done
}
beat=
trap '[[ -z $beat ]] || kill "$beat" 2>/dev/null || true' EXIT

mkdir -p "$out"
cd "$src"
echo ">> building the $k8s_version control plane (${cmds[*]}) from Go modules into $out" >&2
echo ">> once per version: about 6 minutes cold on an idle 2-core machine, over 20 on a loaded one; the module download is part of it" >&2
total=$SECONDS
for cmd in "${cmds[@]}"; do
	echo ">> building $cmd" >&2
	start=$SECONDS
	heartbeat "$cmd" &
	beat=$!
	CGO_ENABLED=0 go build "${build_flags[@]}" -o "$out/$cmd" "./$cmd"
	kill "$beat" 2>/dev/null || true
	wait "$beat" 2>/dev/null || true
	beat=
	echo ">> built $cmd in $((SECONDS - start))s" >&2
done
echo "$stamp" > "$out/.stamp"
# bin/kubectl is the one people and the docs use.
ln -sf "$(basename "$out")/kubectl" "$kubectl_link"
echo ">> control plane built in $((SECONDS - total))s" >&2
