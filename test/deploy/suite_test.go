package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var (
	// cfg reaches the API server as an administrator (system:masters).
	cfg *rest.Config
	// k is an admin client straight to the API server (no cache).
	k client.Client
	// serverVersion is the API server's version, e.g. v1.37.2: Helm renders
	// for it, as it would against this cluster.
	serverVersion string
	// repoRoot is where config/ and charts/ are.
	repoRoot string
)

// Bounds for Eventually: generous, because CI machines are shared; nothing
// here measures speed.
const (
	timeout  = 30 * time.Second
	interval = 50 * time.Millisecond
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	env := &envtest.Environment{}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = filepath.Join(repoRoot, "bin", "controlplane")
	}
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane (run `make controlplane` first): %v\n", err)
		os.Exit(1)
	}
	code := func() int {
		if err := connect(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
	}
	os.Exit(code)
}

func connect() error {
	c := rest.CopyConfig(cfg)
	c.WarningHandlerWithContext = warningRecorder{}
	var err error
	if k, err = client.New(c, client.Options{}); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	serverVersion = v.GitVersion
	return nil
}

// warnings collects the warnings the API server returns on the requests
// made with a context from withWarnings: a deprecated API, an unknown
// field or a pod that a namespace's Pod Security level would refuse all
// come back as warnings, not errors, and are failures here.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

type warningsKey struct{}

func withWarnings(ctx context.Context, w *warnings) context.Context {
	return context.WithValue(ctx, warningsKey{}, w)
}

type warningRecorder struct{}

func (warningRecorder) HandleWarningHeaderWithContext(ctx context.Context, _ int, _ string, text string) {
	if w, ok := ctx.Value(warningsKey{}).(*warnings); ok {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.list = append(w.list, text)
	}
}
