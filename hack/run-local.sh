#!/usr/bin/env bash
# make run: a local control plane with the CRD, the operator's RBAC, the
# admission policies (config/policy), the mapping roles and config/samples
# installed, and bin/manager running against it as its own service account,
# logging to this terminal. Ctrl-C, SIGTERM or SIGHUP stops all of it.
#
# Settings, from the environment (the defaults are what `make run` uses; a
# test overrides them to run beside another `make run`):
#   MANAGER_BINARY             the operator binary (bin/manager; make run builds it)
#   LOCALCLUSTER_BINARY        where hack/localcluster is built (bin/localcluster)
#   KUBEBUILDER_ASSETS         kube-apiserver and etcd (bin/controlplane)
#   KUBECTL                    kubectl (bin/kubectl)
#   RUN_LOCAL_DIR              the kubeconfigs (bin/local)
#   METRICS_BIND_ADDRESS       the operator's metrics, plain HTTP (127.0.0.1:8080)
#   HEALTH_PROBE_BIND_ADDRESS  the operator's healthz and readyz (127.0.0.1:8081)
#   EKS                        empty, or fake: localcluster also serves a fake
#                              EKS and IAM on loopback (cluster "local", in
#                              API_AND_CONFIG_MAP mode, knowing the samples'
#                              roles and users) and the operator writes its
#                              access entries there (`make run EKS=fake`)
set -euo pipefail
cd "$(dirname "$0")/.."

manager=${MANAGER_BINARY:-bin/manager}
localcluster=${LOCALCLUSTER_BINARY:-bin/localcluster}
assets=${KUBEBUILDER_ASSETS:-bin/controlplane}
kubectl=${KUBECTL:-bin/kubectl}
dir=${RUN_LOCAL_DIR:-bin/local}
metrics_addr=${METRICS_BIND_ADDRESS:-127.0.0.1:8080}
probe_addr=${HEALTH_PROBE_BIND_ADDRESS:-127.0.0.1:8081}
eks=${EKS:-}
case $eks in
'' | fake) ;;
*) echo "EKS=$eks: leave EKS empty, or set EKS=fake for a fake EKS and IAM on loopback (no AWS account is ever used)" >&2; exit 2 ;;
esac
# Absolute, for the KUBECONFIG printed below.
[[ $dir == /* ]] || dir=$PWD/$dir
kubeconfig=$dir/kubeconfig
operator_kubeconfig=$dir/operator.kubeconfig
# Where localcluster writes the fake's address (the AWS_* environment of
# the operator), and the fake cluster's name.
eks_state=$dir/eks-fake.env
eks_cluster=local

say() { echo ">> $*" >&2; }

# descendants prints the PID of every process below $1, from /proc: the
# operator, localcluster, and the etcd and kube-apiserver it started, which
# envtest puts in process groups of their own (so a signal to this
# script's group misses them, and only a walk of the tree finds them).
descendants() {
	local -A children=()
	local file pid ppid rest child
	for file in /proc/[0-9]*/stat; do
		# Gone since the glob: skipped. ($(<file) would end the script:
		# under set -e a failed redirection there is fatal.)
		read -r rest 2>/dev/null <"$file" || continue
		pid=${file#/proc/}; pid=${pid%/stat}
		# The command name in field 2 may hold spaces and parentheses:
		# the fields after its closing parenthesis are state, ppid, ...
		rest=${rest##*) }
		read -r _ ppid _ <<<"$rest"
		children[$ppid]+=" $pid"
	done
	local -a queue=("$1")
	while ((${#queue[@]})); do
		pid=${queue[0]}; queue=("${queue[@]:1}")
		for child in ${children[$pid]:-}; do
			echo "$child"
			queue+=("$child")
		done
	done
}

# alive_after waits up to $1 seconds for the PIDs $2... to end, and is
# true, printing those left, if some still run then. A zombie counts as
# ended: it holds no port and waits only for its parent to reap it.
alive_after() {
	local deadline=$((SECONDS + $1)) pid stat
	local -a running
	shift
	while :; do
		running=()
		for pid in "$@"; do
			read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
			stat=${stat##*) }
			[[ ${stat%% *} != Z ]] && running+=("$pid")
		done
		((${#running[@]})) || return 1
		((SECONDS < deadline)) || { echo "${running[@]}"; return 0; }
		sleep 0.2
	done
}

manager_pid='' cluster_pid=''
# cleanup stops everything this script started, whatever ended it: a
# signal, a failed step, or the operator exiting on its own.
cleanup() {
	local status=$1
	# Once only, and not cut short by a second Ctrl-C.
	trap '' INT TERM HUP
	trap - EXIT
	local -a tree
	mapfile -t tree < <(descendants $$)
	# The operator first: stopped after the API server, it would log every
	# request that failed while it shut down.
	if [[ -n $manager_pid ]]; then
		kill -TERM "$manager_pid" 2>/dev/null || true
		alive_after 15 "$manager_pid" >/dev/null || true
	fi
	# localcluster stops kube-apiserver and etcd (envtest gives each 20s).
	[[ -n $cluster_pid ]] && { kill -TERM "$cluster_pid" 2>/dev/null || true; }
	local left
	local -a stuck
	if left=$(alive_after 50 "${tree[@]}"); then
		say "still running 50s after SIGTERM, killing: $left"
		read -ra stuck <<<"$left"
		kill -KILL "${stuck[@]}" 2>/dev/null || true
		alive_after 5 "${stuck[@]}" >/dev/null || true
	fi
	wait 2>/dev/null || true
	rm -f "$kubeconfig" "$operator_kubeconfig" "$eks_state"
	exit "$status"
}
trap 'cleanup $?' EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM
trap 'cleanup 129' HUP

[[ -x $manager ]] || { echo "no operator binary at $manager: run 'make run', or 'make build' first" >&2; exit 1; }
[[ -x $assets/kube-apiserver && -x $assets/etcd ]] || { echo "no control plane in $assets: run 'make controlplane' (6 to 20+ minutes once)" >&2; exit 1; }

# Built, not `go run`: go run leaves its child running when it is sent
# SIGTERM, and the child is what holds the control plane.
say "building $localcluster (seconds when the Go build cache is warm; a minute or two cold on 2 cores)"
go build -o "$localcluster" ./hack/localcluster

rm -f "$kubeconfig" "$operator_kubeconfig" "$eks_state"
cluster_flags=()
if [[ $eks == fake ]]; then
	say "EKS=fake: localcluster also serves a fake EKS and IAM on loopback, cluster $eks_cluster"
	cluster_flags=(--eks-fake "$eks_state" --eks-fake-cluster "$eks_cluster")
fi
say "starting kube-apiserver and etcd from $assets (5 to 30 seconds)"
"$localcluster" --write-kubeconfig "$kubeconfig" --write-operator-kubeconfig "$operator_kubeconfig" --assets "$assets" "${cluster_flags[@]}" &
cluster_pid=$!
deadline=$((SECONDS + 180))
until [[ -s $kubeconfig && -s $operator_kubeconfig && ( -z $eks || -s $eks_state ) ]]; do
	kill -0 "$cluster_pid" 2>/dev/null || { echo "the local control plane did not start" >&2; exit 1; }
	((SECONDS < deadline)) || { echo "timed out after 180s waiting for the local control plane" >&2; exit 1; }
	sleep 0.2
done

k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
# Quiet on success (30 lines of "created" would push what to try off the
# screen); kubectl's errors still show.
say "installing the CRD, config/rbac (the operator's RBAC, the mapping roles), config/policy, config/samples"
# The operator's namespace: its service account, its backup of aws-auth,
# the parameter of the policies.
k create namespace aws-auth-guardian-system >/dev/null
k apply -f config/crd/bases >/dev/null
k wait --for=condition=Established crd/iamidentitymappings.iam.aws-auth-guardian.dev --timeout=60s >/dev/null
# The operator's own least RBAC, and the mapping editor and viewer roles.
k apply -k config/rbac >/dev/null
k apply -k config/policy >/dev/null
# Policies take effect a moment after they are created: wait until the one
# protecting aws-auth refuses, so what is printed below holds at once.
deadline=$((SECONDS + 60))
until [[ $(k create configmap aws-auth -n kube-system --dry-run=server -o name 2>&1 || true) == *"managed by aws-auth-guardian"* ]]; do
	((SECONDS < deadline)) || { echo "the admission policies of config/policy did not take effect within 60s" >&2; exit 1; }
	sleep 0.2
done
# A person who may edit mappings but not grant privileged groups.
k create clusterrolebinding demo-jane-mapping-editor --clusterrole=aws-auth-guardian-mapping-editor --user=jane >/dev/null
k apply -k config/samples >/dev/null

say "starting $manager as system:serviceaccount:aws-auth-guardian-system:aws-auth-guardian-controller-manager"
# Should this script die by SIGKILL, which no trap sees, the kernel sends
# the operator SIGTERM (localcluster watches for the same by itself).
launch=()
if command -v setpriv >/dev/null; then launch=(setpriv --pdeathsig TERM --); fi
manager_flags=()
if [[ $eks == fake ]]; then
	# The fake's address, region and dummy credentials, for the operator
	# alone (env execs it: its PID stays the one waited for). The resync is
	# short so that an entry deleted out of band is back in seconds.
	mapfile -t eks_env <"$eks_state"
	launch+=(env "${eks_env[@]}")
	manager_flags=(--eks-cluster-name "$eks_cluster" --access-entry-resync 5s)
fi
"${launch[@]}" "$manager" --kubeconfig "$operator_kubeconfig" --zap-devel \
	--metrics-bind-address "$metrics_addr" --metrics-secure=false --health-probe-bind-address "$probe_addr" "${manager_flags[@]}" &
manager_pid=$!
# Up means it rendered the samples into aws-auth, and with EKS=fake that
# every sample's access entry is in the fake too (AccessEntrySynced).
deadline=$((SECONDS + 120))
up() {
	k get configmap -n kube-system aws-auth -o name >/dev/null 2>&1 || return 1
	[[ -z $eks ]] || k wait iim --all --for=condition=AccessEntrySynced --timeout=1s >/dev/null 2>&1
}
until up; do
	kill -0 "$manager_pid" 2>/dev/null || { wait "$manager_pid" || true; echo "the operator exited" >&2; exit 1; }
	((SECONDS < deadline)) || { echo "the operator did not create aws-auth${eks:+ and the access entries} within 120s" >&2; exit 1; }
	sleep 0.2
done

cat <<MSG

  aws-auth-guardian is running against a local control plane, behind the
  admission policies of config/policy. In another shell:

    cd $PWD
    export KUBECONFIG=$kubeconfig

    # 1. The mappings (config/samples) and the aws-auth rendered from them
    bin/kubectl get iim
    bin/kubectl get cm -n kube-system aws-auth -o yaml

    # 2. Delete aws-auth: the policy refuses, even you (system:masters)
    bin/kubectl delete cm -n kube-system aws-auth

    # 3. Break glass: in the group aws-auth-guardian:break-glass (impersonated;
    #    --as-group replaces your groups, so system:masters is named too) the
    #    delete passes, and the operator puts aws-auth back at once (AGE: seconds)
    bin/kubectl delete cm -n kube-system aws-auth --as=admin --as-group=system:masters --as-group=aws-auth-guardian:break-glass
    bin/kubectl get cm -n kube-system aws-auth

    # 4. jane edits mappings (ClusterRole aws-auth-guardian-mapping-editor):
    #    an ordinary change reaches aws-auth; granting system:masters is refused
    bin/kubectl patch iim ci-deployer --as=jane --type=merge -p '{"spec":{"groups":["ci:deployers","ci:releasers"]}}'
    bin/kubectl get cm -n kube-system aws-auth -o jsonpath='{.data.mapUsers}'   # a moment later: with ci:releasers
    bin/kubectl patch iim ci-deployer --as=jane --type=merge -p '{"spec":{"groups":["system:masters"]}}'
MSG
if [[ $eks == fake ]]; then
	entries="$localcluster entries"
	[[ $eks_state == "$PWD/bin/local/eks-fake.env" ]] || entries+=" --state $eks_state"
	endpoint=$(sed -n 's/^AWS_ENDPOINT_URL_EKS=//p' "$eks_state")
	cat <<MSG

    # 5. EKS access entries, in a fake EKS and IAM at $endpoint (EKS=fake;
    #    cluster $eks_cluster, API_AND_CONFIG_MAP). It began with the creator's
    #    entry alone; now each sample has one, tagged
    #    iam.aws-auth-guardian.dev/mapping (MAPPING-TAG), and the creator's is
    #    left as it is. ACCESS-ENTRY is each mapping's AccessEntrySynced.
    $entries
    bin/kubectl get iim -o wide
    env \$(cat $eks_state) aws eks list-access-entries --cluster-name $eks_cluster   # or the AWS CLI v2

    # 6. Delete an access entry out of band: the operator puts it back within
    #    5s (--access-entry-resync), and the mapping's events say Restored
    $entries delete arn:aws:iam::111122223333:user/ci/deployer
    $entries
    bin/kubectl describe iim ci-deployer
MSG
fi
cat <<MSG

  Metrics: http://$metrics_addr/metrics   Ctrl-C stops the operator and the control plane.

MSG
# Waited for in the background, so that a signal runs the trap at once.
wait "$manager_pid"
