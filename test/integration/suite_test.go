// Package integration runs the operator against a real kube-apiserver and
// etcd (envtest): immutability, validation, preconditions, finalizers and
// field-selected caches are the API server's to decide, not a fake's.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

var (
	cfg    *rest.Config
	scheme = controllers.NewScheme()
	// k is an admin client straight to the API server (no cache).
	k client.Client
	// crdPaths hold the CRD as config/ ships it.
	crdPaths []string
	// repoRoot is where config/ is.
	repoRoot string
	// testEnv makes users with their own identities (AddUser), so that the
	// API server's RBAC and admission decide what they may do.
	testEnv *envtest.Environment
)

// Bounds for Eventually and Consistently: generous, because CI machines are
// shared; nothing here measures speed.
const (
	timeout  = 20 * time.Second
	interval = 25 * time.Millisecond
)

func TestMain(m *testing.M) {
	// Quiet unless TEST_VERBOSE is set: failures speak through assertions.
	level := zapcore.ErrorLevel
	if os.Getenv("TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(level)))

	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	repoRoot = root
	crdPaths = []string{filepath.Join(root, "config", "crd", "bases")}
	env := &envtest.Environment{
		CRDDirectoryPaths:     crdPaths,
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = filepath.Join(root, "bin", "controlplane")
	}
	var err error
	testEnv = env
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane (run `make controlplane` first): %v\n", err)
		os.Exit(1)
	}
	if k, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	if err := k.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		panic(err)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
	}
	os.Exit(code)
}

// operatorNamespace holds the backup, as in a real install.
const operatorNamespace = "aws-auth-guardian-system"

var backupKey = client.ObjectKey{Namespace: operatorNamespace, Name: managed.BackupName}

// operator is one running manager with the reconciler, as main.go wires it.
type operator struct {
	mgr ctrl.Manager
	// stop stops the operator as a crash would: whatever it was doing is
	// left half done.
	stop func()
}

// startOperator empties the cluster, creates the objects that exist before
// the operator, and runs the operator until the test ends. Tests that start
// it must not run in parallel: they share the one aws-auth.
func startOperator(t *testing.T, mode managed.Mode, before ...client.Object) *operator {
	t.Helper()
	resetCluster(t)
	create(t, before...)
	return runOperator(t, mode)
}

// runOperator runs one more operator on the cluster as it is, until the
// test ends (or stop is called). Several may run at once, without leader
// election, to test that their writes are fenced.
func runOperator(t *testing.T, mode managed.Mode) *operator {
	t.Helper()
	return runOperatorAs(t, cfg, mode)
}

// runOperatorAs runs the operator with the identity of restConfig.
func runOperatorAs(t *testing.T, restConfig *rest.Config, mode managed.Mode) *operator {
	t.Helper()
	return runOperatorWith(t, restConfig, mode, nil)
}

// runOperatorWith runs the operator with the identity of restConfig and,
// when accessEntries is not nil, its access entry controller, wired as
// operator.go wires them with --eks-cluster-name.
func runOperatorWith(t *testing.T, restConfig *rest.Config, mode managed.Mode, accessEntries *controllers.AccessEntryReconciler) *operator {
	t.Helper()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each test starts its own manager in this one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if accessEntries != nil {
		accessEntries.Client, accessEntries.APIReader, accessEntries.Cache = mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache()
	}
	if err := (&controllers.AWSAuthReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Cache:           mgr.GetCache(),
		Recorder:        mgr.GetEventRecorder("aws-auth-guardian"),
		Mode:            mode,
		BatchDelay:      50 * time.Millisecond,
		MaxRemovedShare: 0.5,
		BackupNamespace: operatorNamespace,
		AccessEntries:   accessEntries,
	}).SetupWithManager(context.Background(), mgr); err != nil {
		t.Fatal(err)
	}
	if accessEntries != nil {
		if err := accessEntries.SetupWithManager(context.Background(), mgr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	op := &operator{mgr: mgr}
	op.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	t.Cleanup(op.stop)
	return op
}

// resetCluster removes every mapping, aws-auth and its backup, finalizers
// included, so each test starts from a cluster the operator never saw.
func resetCluster(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	var list iamv1alpha1.IAMIdentityMappingList
	g.Expect(k.List(ctx, &list)).To(Succeed())
	for i := range list.Items {
		forceDelete(g, &list.Items[i])
	}
	for _, key := range []client.ObjectKey{managed.AWSAuthKey, backupKey} {
		cm := &corev1.ConfigMap{}
		if err := k.Get(ctx, key, cm); err == nil {
			forceDelete(g, cm)
		}
	}
	g.Eventually(func(g Gomega) {
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
		g.Expect(apierrors.IsNotFound(k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{}))).To(BeTrue())
		g.Expect(apierrors.IsNotFound(k.Get(ctx, backupKey, &corev1.ConfigMap{}))).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// forceDelete deletes obj past its finalizers, as a person with
// break-glass rights would.
func forceDelete(g Gomega, obj client.Object) {
	ctx := context.Background()
	dropFinalizers := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	g.Expect(client.IgnoreNotFound(k.Patch(ctx, obj, dropFinalizers))).To(Succeed())
	g.Expect(client.IgnoreNotFound(k.Delete(ctx, obj))).To(Succeed())
}
