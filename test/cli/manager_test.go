// Package cli drives the built manager binary as a person, the Deployment
// and CI run it: the command line is what they meet first, and a mistake
// in it must never start the operator. Each run is bounded by a timeout,
// so that a regression that starts the operator fails the test instead of
// hanging it.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	module = "github.com/aws-auth-guardian/aws-auth-guardian"
	// testVersion is what the build sets with -X; `manager version` and
	// the operator's start-up line must show it.
	testVersion = "v0.0.0-clitest+x"
	// runTimeout bounds each run of the binary; every command here ends
	// in milliseconds, unless it wrongly starts an operator.
	runTimeout = 30 * time.Second
)

// buildManager builds the binary as `make build` does, with a known version.
func buildManager(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "manager")
	// A cold build cache compiles all of client-go and controller-runtime.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "-ldflags", "-X "+module+"/internal/version.version="+testVersion, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// env is the environment of every run: no cluster can be found (no
// KUBECONFIG file, no ~/.kube/config, not in a pod), so an operator that
// starts by mistake fails at once instead of reaching a real cluster.
func env(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "KUBECONFIG", "HOME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "HOME="+home, "KUBECONFIG="+filepath.Join(home, "no-such-kubeconfig"))
}

func runManager(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env(t)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("manager %q still ran after %v (did it start the operator?)\nstderr:\n%s", args, runTimeout, stderr.String())
	}
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("manager %q: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// want is what a run must print: each string of stdout and stderr, and
// none of notStderr.
type want struct {
	code              int
	stdout, stderr    []string
	notStderr         []string
	stdoutMustBeEmpty bool
}

// operatorStarted are the log lines of an operator that was started.
var operatorStarted = []string{"Manager stopped", "Starting manager", `"logger":"setup"`}

func TestManagerBinary(t *testing.T) {
	bin := buildManager(t)
	tests := []struct {
		name string
		args []string
		want want
	}{
		{"--help lists the commands", []string{"--help"}, want{code: 0, stdout: []string{
			"Usage:\n  manager [flags]\n  manager [command]",
			"\n  run ", "\n  import ", "\n  render ", "\n  version ", "\n  help ",
			"--leader-elect", "--metrics-bind-address", "--kubeconfig", "--zap-encoder", "--zap-devel",
		}, notStderr: operatorStarted}},
		{"help does not start the operator", []string{"help"}, want{code: 0, stdout: []string{"manager [command]", "\n  run "}, notStderr: operatorStarted}},
		{"run --help", []string{"run", "--help"}, want{code: 0, stdout: []string{"manager run [flags]", "--leader-election-lease-duration", "--zap-log-level"}, notStderr: operatorStarted}},
		{"import --help", []string{"import", "--help"}, want{code: 0, stdout: []string{"manager import [--kubeconfig PATH | --file PATH|- | --eks-cluster-name NAME]", "--file path"}}},
		{"render --help", []string{"render", "--help"}, want{code: 0, stdout: []string{"manager render --file PATH|-", "--configmap-mode mode"}}},
		{"a misspelt command", []string{"rnu"}, want{code: 2, stderr: []string{
			`Error: unknown command "rnu" for "manager"`, "Did you mean this?\n\trun\n", "Run 'manager --help' for usage.",
		}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"a word that is no command", []string{"help-me"}, want{code: 2, stderr: []string{`unknown command "help-me"`}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"an argument after the root's flags", []string{"--leader-elect", "now"}, want{code: 2, stderr: []string{`unknown command "now"`}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"an argument to run", []string{"run", "now"}, want{code: 2, stderr: []string{`"manager run" takes no arguments`, "Run 'manager run --help' for usage."}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"an unknown flag", []string{"--leader-elec"}, want{code: 2, stderr: []string{"unknown flag: --leader-elec", "Run 'manager --help' for usage."}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"an unknown flag to run", []string{"run", "--nope"}, want{code: 2, stderr: []string{"unknown flag: --nope", "Run 'manager run --help' for usage."}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"a bad flag value", []string{"--configmap-mode=readonly"}, want{code: 2, stderr: []string{`--configmap-mode must be "immutable" or "mutable", not "readonly"`, "--help"}, notStderr: operatorStarted, stdoutMustBeEmpty: true}},
		{"import with no input", []string{"import"}, want{code: 2, stderr: []string{"import: cannot find the cluster"}, stdoutMustBeEmpty: true}},
		{"import with a bad flag", []string{"import", "--fiel", "aws-auth.yaml"}, want{code: 2, stderr: []string{"unknown flag: --fiel", "Run 'manager import --help' for usage."}, stdoutMustBeEmpty: true}},
		{"import with an argument", []string{"import", "aws-auth.yaml"}, want{code: 2, stderr: []string{`"manager import" takes no arguments`}, stdoutMustBeEmpty: true}},
		{"render with no file", []string{"render"}, want{code: 2, stderr: []string{"give at least one --file"}, stdoutMustBeEmpty: true}},
		{"render with a missing file", []string{"render", "--file", "/no/such/mappings.yaml"}, want{code: 2, stderr: []string{"/no/such/mappings.yaml", "no such file"}, stdoutMustBeEmpty: true}},
		{"render with a bad flag", []string{"render", "--files", "m.yaml"}, want{code: 2, stderr: []string{"unknown flag: --files", "Run 'manager render --help' for usage."}, stdoutMustBeEmpty: true}},
		{"version prints the build", []string{"version"}, want{code: 0, stdout: []string{"aws-auth-guardian " + testVersion + "\n", "commit:", "go:"}}},
		{"version takes no argument", []string{"version", "--short"}, want{code: 2, stderr: []string{"unknown flag: --short"}, stdoutMustBeEmpty: true}},
		// The operator itself, with the Deployment's flags: without a
		// cluster it stops at once, says why in its JSON log, and exits 1.
		{"the operator as deployed", []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081", "--zap-encoder=json"},
			want{code: 1, stderr: []string{`"msg":"Manager stopped"`, "finding the cluster"}, notStderr: []string{"Error:", "Usage:"}, stdoutMustBeEmpty: true}},
		{"the operator with run", []string{"run", "--leader-elect", "--zap-encoder=json"},
			want{code: 1, stderr: []string{`"msg":"Manager stopped"`}, notStderr: []string{"Error:", "Usage:"}, stdoutMustBeEmpty: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runManager(t, bin, tt.args...)
			if r.code != tt.want.code {
				t.Errorf("manager %q: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, r.code, tt.want.code, r.stdout, r.stderr)
			}
			for _, s := range tt.want.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("manager %q: stdout does not hold %q:\n%s", tt.args, s, r.stdout)
				}
			}
			for _, s := range tt.want.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("manager %q: stderr does not hold %q:\n%s", tt.args, s, r.stderr)
				}
			}
			for _, s := range tt.want.notStderr {
				if strings.Contains(r.stderr, s) {
					t.Errorf("manager %q: stderr holds %q:\n%s", tt.args, s, r.stderr)
				}
			}
			if tt.want.stdoutMustBeEmpty && r.stdout != "" {
				t.Errorf("manager %q printed to stdout:\n%s", tt.args, r.stdout)
			}
		})
	}

	t.Run("the start-up log line says which build runs", func(t *testing.T) {
		t.Parallel()
		startupLine(t, bin)
	})
}

// startupLine starts the operator against a fake API server that answers
// discovery only, and waits for its "Starting manager" line, which must
// carry the version; then it stops the operator.
func startupLine(t *testing.T, bin string) {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	config := "apiVersion: v1\nkind: Config\n" +
		"clusters: [{name: fake, cluster: {server: \"" + fakeDiscovery(t).URL + "\"}}]\n" +
		"users: [{name: fake, user: {token: fake}}]\n" +
		"contexts: [{name: fake, context: {cluster: fake, user: fake}}]\ncurrent-context: fake\n"
	if err := os.WriteFile(kubeconfig, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--kubeconfig", kubeconfig, "--zap-encoder=json",
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0", "--backup-namespace=clitest")
	cmd.Env = env(t)
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // kills the operator
		_ = cmd.Wait()
	}()
	var seen []string
	scanner := bufio.NewScanner(stderr)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		seen = append(seen, line)
		var entry struct {
			Msg, Version, Commit string
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "Starting manager" {
			continue
		}
		if entry.Version != testVersion || entry.Commit == "" {
			t.Errorf("the start-up line has version %q and commit %q, want version %q and a commit:\n%s", entry.Version, entry.Commit, testVersion, line)
		}
		return
	}
	t.Fatalf("no \"Starting manager\" line before the operator stopped or %v passed; it logged:\n%s", runTimeout, strings.Join(seen, "\n"))
}

// fakeDiscovery is an API server that knows the kinds the operator sets
// up watches and indexes for, and answers nothing else: enough for the
// operator to reach its start-up line.
func fakeDiscovery(t *testing.T) *httptest.Server {
	t.Helper()
	type resource struct {
		Name       string   `json:"name"`
		Namespaced bool     `json:"namespaced"`
		Kind       string   `json:"kind"`
		Verbs      []string `json:"verbs"`
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	groups := map[string][]resource{ // by group/version; "v1" is the core group
		"v1": {
			{"configmaps", true, "ConfigMap", verbs}, {"events", true, "Event", verbs},
			{"namespaces", false, "Namespace", verbs}, {"secrets", true, "Secret", verbs},
		},
		"iam.aws-auth-guardian.dev/v1alpha1": {{"iamidentitymappings", false, "IAMIdentityMapping", verbs}},
		"admissionregistration.k8s.io/v1": {
			{"validatingadmissionpolicies", false, "ValidatingAdmissionPolicy", verbs},
			{"validatingadmissionpolicybindings", false, "ValidatingAdmissionPolicyBinding", verbs},
		},
		"coordination.k8s.io/v1":       {{"leases", true, "Lease", verbs}},
		"events.k8s.io/v1":             {{"events", true, "Event", verbs}},
		"apiextensions.k8s.io/v1":      {{"customresourcedefinitions", false, "CustomResourceDefinition", verbs}},
		"rbac.authorization.k8s.io/v1": {{"roles", true, "Role", verbs}, {"rolebindings", true, "RoleBinding", verbs}},
	}
	type groupVersion struct {
		GroupVersion string `json:"groupVersion"`
		Version      string `json:"version"`
	}
	type group struct {
		Name             string         `json:"name"`
		Versions         []groupVersion `json:"versions"`
		PreferredVersion groupVersion   `json:"preferredVersion"`
	}
	var groupList []group
	for gv := range groups {
		name, version, ok := strings.Cut(gv, "/")
		if !ok {
			continue
		}
		v := groupVersion{GroupVersion: gv, Version: version}
		groupList = append(groupList, group{Name: name, Versions: []groupVersion{v}, PreferredVersion: v})
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body any
		switch path := r.URL.Path; {
		case path == "/api":
			body = map[string]any{"kind": "APIVersions", "versions": []string{"v1"}}
		case path == "/apis":
			body = map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": groupList}
		case path == "/api/v1" || strings.HasPrefix(path, "/apis/"):
			gv := strings.TrimPrefix(strings.TrimPrefix(path, "/apis/"), "/api/")
			resources, ok := groups[gv]
			if !ok {
				http.NotFound(w, r)
				return
			}
			body = map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	return s
}
