// Package chaos runs the operator as its real binary, in processes of its
// own, against a real kube-apiserver and etcd, under random load and
// faults: kill -9, leader takeovers, the control plane stopped and
// restarted, a create of aws-auth denied at admission. Every scenario ends
// by checking that aws-auth holds exactly what the mappings ask for and that
// no mapping's entry was missing from it for longer than a bound.
//
// The default run is short, for `make test`; `make chaos` (hack/chaos.sh)
// passes larger -chaos.* flags. The seed is printed and can be replayed
// with -chaos.seed; the timing of the processes cannot be replayed, so
// what is asserted never depends on it.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
)

// The defaults are the short run; hack/chaos.sh passes the long one.
var (
	seed         = flag.Int64("chaos.seed", 20260601, "Seed of the random operations and fault times; every scenario derives its own from it.")
	numOps       = flag.Int("chaos.ops", 120, "Random operations per load scenario (random ops, kills; split over the phases of the takeover scenario).")
	numKills     = flag.Int("chaos.kills", 2, "kill -9 of the operator during the load of the kill scenario.")
	numTakeovers = flag.Int("chaos.takeovers", 1, "Leader kills (kill -9) with two replicas under leader election.")
	replicaLease = flag.Duration("chaos.lease-duration", 5*time.Second,
		"The replicas' --leader-election-lease-duration (renew deadline 2/3 of it, retry period 1/5): a killed leader is replaced after about this long. The operator's default is 15s.")
	numRestarts = flag.Int("chaos.apirestarts", 1, "Stops and restarts of the kube-apiserver and etcd under the operator.")
	opInterval  = flag.Duration("chaos.interval", 20*time.Millisecond, "Pace of the random operations.")
	apiDown     = flag.Duration("chaos.apidown", 2*time.Second, "How long the control plane stays down at each restart.")
	apiGrace    = flag.Duration("chaos.apiserver-grace", 5*time.Second,
		"How long kube-apiserver and etcd get to stop after SIGTERM before they are killed: kube-apiserver waits up to its request timeout (60s) for open watches.")
	absenceBound = flag.Duration("chaos.absence-bound", 2*time.Second,
		"Longest a Ready mapping's entry may be missing from aws-auth, outside its own changes, while an operator runs.")
	restartBound = flag.Duration("chaos.restart-bound", 10*time.Second,
		"Longest an entry may still be missing once a killed operator is back (process restarted, or a new leader elected): start-up and cache sync included.")
)

// operatorNamespace holds the backup and the leader election Lease, as in
// a real install.
const operatorNamespace = "aws-auth-guardian-system"

// Bounds for Eventually: generous, because the machine is shared with
// other test packages; they bound waiting, they measure nothing.
const (
	timeout  = 30 * time.Second
	interval = 20 * time.Millisecond
)

var (
	// env is the control plane; the restart scenario stops and starts its
	// processes, which keep their data and certificates (see startControlPlane).
	env *envtest.Environment
	// cfg and k are the admin's, straight to the API server.
	cfg *rest.Config
	k   client.Client
	cs  kubernetes.Interface
	// kubeconfigPath is the admin kubeconfig the operator processes use.
	kubeconfigPath string
	// managerPath is the operator binary under test.
	managerPath string
	// workDir holds the control plane's data, the kubeconfig, the binary
	// and the operators' logs; removed at the end.
	workDir string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// envtest and the test's own clients log through controller-runtime's
	// logger: quiet unless TEST_VERBOSE is set.
	level := zapcore.ErrorLevel
	if os.Getenv("TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(level)))

	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	var err error
	if workDir, err = os.MkdirTemp("", "aws-auth-guardian-chaos-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("CHAOS_KEEP_WORKDIR") == "" {
		defer func() { _ = os.RemoveAll(workDir) }()
	} else {
		fmt.Printf("chaos: logs and data kept in %s\n", workDir)
	}
	fmt.Printf("chaos: seed %d (replay with -chaos.seed=%d); ops %d, kills %d, takeovers %d, control plane restarts %d\n",
		*seed, *seed, *numOps, *numKills, *numTakeovers, *numRestarts)

	if managerPath, err = managerBinary(root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := startControlPlane(root); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane (run `make controlplane` first): %v\n", err)
		return 1
	}
	code := m.Run()
	stopAllReplicas()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
	}
	printSummary()
	return code
}

// managerBinary is the operator to test: $CHAOS_MANAGER_BINARY when set
// (make chaos points it at the bin/manager that make build just made),
// else a fresh build of the repository's main package.
func managerBinary(root string) (string, error) {
	if path := os.Getenv("CHAOS_MANAGER_BINARY"); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("CHAOS_MANAGER_BINARY: %w", err)
		}
		fmt.Printf("chaos: operator binary %s (from CHAOS_MANAGER_BINARY)\n", path)
		return path, nil
	}
	out := filepath.Join(workDir, "manager")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	began := time.Now()
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the operator: %w", err)
	}
	fmt.Printf("chaos: operator binary built from %s in %v\n", root, time.Since(began).Round(time.Millisecond))
	return out, nil
}

// startControlPlane starts envtest with its data directory and its
// certificates in workDir, rather than in directories envtest removes when
// a process stops: so kube-apiserver and etcd can be stopped and started
// again with the same data, the same serving certificate and the same
// ports, and every client (the operators' kubeconfig included) goes on
// working across the restart.
func startControlPlane(root string) error {
	apiDir, etcdDir := filepath.Join(workDir, "apiserver"), filepath.Join(workDir, "etcd")
	for _, dir := range []string{apiDir, etcdDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	// Their logs, for a failed restart.
	apiLog, err := os.Create(filepath.Join(workDir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	etcdLog, err := os.Create(filepath.Join(workDir, "etcd.log"))
	if err != nil {
		return err
	}
	env = &envtest.Environment{
		CRDDirectoryPaths:       []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:   true,
		ControlPlaneStopTimeout: *apiGrace,
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{CertDir: apiDir, Out: apiLog, Err: apiLog},
			Etcd:      &envtest.Etcd{DataDir: etcdDir, Out: etcdLog, Err: etcdLog},
		},
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = filepath.Join(root, "bin", "controlplane")
	}
	began := time.Now()
	if _, err := env.Start(); err != nil {
		return err
	}
	fmt.Printf("chaos: control plane up in %v\n", time.Since(began).Round(time.Millisecond))

	// The operators run as the envtest admin (system:masters) through a
	// kubeconfig file, as they would from a Deployment's mounted one.
	admin, err := env.AddUser(envtest.User{Name: "chaos-admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfigPath = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	cfg = admin.Config()
	if k, err = client.New(cfg, client.Options{Scheme: controllers.NewScheme()}); err != nil {
		return err
	}
	if cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})
}

// The figures every scenario reports, printed again together at the end
// (hack/chaos.sh collects them).
var (
	summaryMu sync.Mutex
	summary   []string
)

// figure logs a measured figure and keeps it for the summary.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	summaryMu.Lock()
	defer summaryMu.Unlock()
	summary = append(summary, t.Name()+": "+line)
}

func printSummary() {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	fmt.Printf("chaos: summary (seed %d)\n", *seed)
	for _, line := range summary {
		fmt.Println("chaos:   " + line)
	}
}
