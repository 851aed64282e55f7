package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// Names that other tools and the policies rely on: fixed, never derived.
const (
	awsAuthNamespace  = "kube-system"
	awsAuthName       = "aws-auth"
	operatorNamespace = "aws-auth-guardian-system"
	noiseNamespace    = "bench-noise"
	account           = "111122223333"
)

// The role the authenticator is asked about in every outage measurement,
// and the node role that keeps the NodesRemoved guard satisfied.
var (
	lookupARN = "arn:aws:iam::" + account + ":role/bench-lookup"
	nodesARN  = "arn:aws:iam::" + account + ":role/bench-nodes"
)

// bench holds the control plane, the operator process and what watches
// aws-auth, plus the mappings the bench created: their render is what
// aws-auth must hold.
type bench struct {
	opts       options
	env        *envtest.Environment
	kubeconfig string
	k          client.Client
	cs         kubernetes.Interface
	op         *operator
	operators  int // started so far, to name their logs
	w          *watcher
	auth       *configmap.ConfigMapMapper
	stopAuth   chan struct{}
	pidFile    string

	mu       sync.Mutex
	mappings map[string]awsauth.Mapping

	// healGap is the absence of aws-auth in the heal measurement, without
	// the probe running, to compare 2b with.
	healGap *dist
	// healAtRest is the heal of 1, to compare the access entry target's
	// heals with.
	healAtRest *dist
	// eks, when set, is the fake EKS and IAM that the operator is started
	// against, with the access entry target on (see startOperator), and
	// eksExtra the flags it gets besides eksArgs.
	eks      *awsfake.Server
	eksExtra []string
	// changeOutage is the outage per change of 2a, immutable, target off,
	// to compare the one with a slow EKS with.
	changeOutage *dist
	// metricsSecure says bin/manager has --metrics-secure (HTTPS metrics by
	// default), which the bench turns off: it scrapes plain HTTP.
	metricsSecure bool
}

// startCluster starts kube-apiserver and etcd from bin/controlplane with
// the CRD installed, the operator namespace created, and an admin
// kubeconfig written for the operator and the authenticator.
func startCluster(ctx context.Context, opts options) (*bench, error) {
	b := &bench{opts: opts, mappings: map[string]awsauth.Mapping{}, pidFile: filepath.Join(opts.workdir, "pids")}
	_ = os.Remove(b.pidFile)
	b.env = &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(opts.root, "bin", "controlplane"),
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              []string{filepath.Join(opts.root, "config", "crd", "bases")},
			ErrorIfPathMissing: true,
		},
	}
	if _, err := b.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	b.recordChildren()
	admin, err := b.env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return b, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return b, err
	}
	b.kubeconfig = filepath.Join(opts.workdir, "kubeconfig")
	if err := os.WriteFile(b.kubeconfig, kubeconfig, 0o600); err != nil {
		return b, err
	}
	cfg := rest.CopyConfig(admin.Config())
	// The bench is the load: no client-side throttling.
	cfg.QPS, cfg.Burst = 10000, 10000
	scheme := k8sruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), iamv1alpha1.AddToScheme(scheme)); err != nil {
		return b, err
	}
	if b.k, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return b, err
	}
	proto := rest.CopyConfig(cfg)
	proto.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	proto.ContentType = "application/vnd.kubernetes.protobuf"
	if b.cs, err = kubernetes.NewForConfig(proto); err != nil {
		return b, err
	}
	for _, ns := range []string{operatorNamespace, noiseNamespace} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := b.k.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return b, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return b, nil
}

// recordChildren writes the pids of the processes this program started
// (etcd, kube-apiserver, the operator) to a file, so that hack/bench.sh can
// end exactly these if this program dies without cleaning up.
func (b *bench) recordChildren() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	me := os.Getpid()
	var pids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	_ = os.WriteFile(b.pidFile, []byte(strings.Join(pids, "\n")+"\n"), 0o600)
}

func (b *bench) close() {
	if b.stopAuth != nil {
		close(b.stopAuth)
	}
	if b.op != nil {
		_ = b.op.stop()
	}
	if b.env != nil {
		_ = b.env.Stop()
	}
	_ = os.Remove(b.pidFile)
}

// kubernetesVersion is what the API server reports.
func (b *bench) kubernetesVersion() string {
	v, err := b.cs.Discovery().ServerVersion()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return v.GitVersion
}
