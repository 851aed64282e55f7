#!/usr/bin/env bash
# make run: a local control plane, the CRD and config/samples installed,
# and the operator running against it in the foreground (Ctrl-C stops all).
set -euo pipefail
cd "$(dirname "$0")/.."

kubeconfig=bin/local/kubeconfig
kubectl=bin/kubectl
rm -f "$kubeconfig"

go run ./hack/localcluster --write-kubeconfig "$kubeconfig" --assets bin/controlplane &
cluster=$!
trap 'kill $cluster 2>/dev/null; wait $cluster 2>/dev/null' EXIT

for _ in $(seq 1 300); do
	[[ -s "$kubeconfig" ]] && break
	kill -0 $cluster 2>/dev/null || { echo "the local control plane did not start" >&2; exit 1; }
	sleep 0.2
done
[[ -s "$kubeconfig" ]] || { echo "timed out waiting for the local control plane" >&2; exit 1; }

# The operator keeps its backup of aws-auth in its own namespace.
"$kubectl" --kubeconfig "$kubeconfig" create namespace aws-auth-guardian-system
"$kubectl" --kubeconfig "$kubeconfig" apply -f config/crd/bases
"$kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Established crd/iamidentitymappings.iam.aws-auth-guardian.dev --timeout=60s
"$kubectl" --kubeconfig "$kubeconfig" apply -k config/samples

cat <<MSG

  Local control plane is up. In another shell:

    export KUBECONFIG=$PWD/$kubeconfig
    bin/kubectl get iim
    bin/kubectl get cm -n kube-system aws-auth -o yaml
    bin/kubectl delete cm -n kube-system aws-auth   # and watch it come back

  Starting the operator (Ctrl-C stops it and the control plane).

MSG
go run . --kubeconfig "$kubeconfig" --zap-devel --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081
