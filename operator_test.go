package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
)

// parsedOperator is the real operator's flags and checks with Run left
// out, so that a test sees what the command line made of them.
type parsedOperator struct {
	*operator
	bound  []*pflag.FlagSet // the root command's and run's
	parsed *pflag.FlagSet   // of the command that ran
}

func (p *parsedOperator) BindFlags(fs *pflag.FlagSet) {
	p.operator.BindFlags(fs)
	p.bound = append(p.bound, fs)
}

func (p *parsedOperator) Run() error {
	for _, fs := range p.bound {
		if fs.Parsed() {
			p.parsed = fs
		}
	}
	return nil
}

// The flags as the Deployment, the chart, the tests and hack/ pass them,
// in every form they use: renaming one, or a parser that reads one
// differently, breaks a caller that this package does not build.
//
// Not parallel: controller-runtime keeps --kubeconfig in a package
// variable, which every BindFlags binds again.
func TestCallersFlagsParse(t *testing.T) {
	callers := map[string][]string{
		"config/manager/manager.yaml": {"--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--zap-encoder=json"},
		"the chart's Deployment": {"--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--zap-encoder=json",
			"--configmap-mode=mutable", "--max-removed-share=0.25", "--batch-delay=1s", "--zap-log-level=debug"},
		"test/chaos": {"--kubeconfig", "/k/config", "--metrics-bind-address", "127.0.0.1:1", "--health-probe-bind-address", "127.0.0.1:2",
			"--backup-namespace", "ops", "--leader-elect=true", "--zap-time-encoding=rfc3339nano", "--leader-election-namespace", "ops",
			"--leader-election-lease-duration=6s", "--leader-election-renew-deadline=4s", "--leader-election-retry-period=1.2s"},
		"test/bench": {"--kubeconfig", "/k/config", "--configmap-mode", "mutable", "--metrics-bind-address", "127.0.0.1:1",
			"--health-probe-bind-address", "127.0.0.1:2", "--backup-namespace", "ops"},
		"hack/run-local.sh": {"--kubeconfig", "/k/config", "--zap-devel", "--metrics-bind-address", "127.0.0.1:8080", "--health-probe-bind-address", "127.0.0.1:8081"},
		"the remaining flags": {"--recheck-interval=1m", "--protection-check-interval=5s", "--zap-stacktrace-level=panic",
			"--eks-cluster-name=dev", "--access-entry-resync=30s", "--access-entry-full-resync=5m", "--eks-api-qps=50", "--eks-api-burst=20"},
	}
	for caller, args := range callers {
		for _, command := range [][]string{nil, {"run"}} {
			t.Run(caller+" "+strings.Join(command, ""), func(t *testing.T) {
				p := &parsedOperator{operator: newOperator()}
				var stdout, stderr bytes.Buffer
				if code := cli.Execute(append(command, args...), nil, &stdout, &stderr, p); code != 0 || p.parsed == nil {
					t.Fatalf("exit code %d, ran with parsed flags %t; stderr:\n%s", code, p.parsed != nil, stderr.String())
				}
				fs := p.parsed
				for i := 0; i < len(args); i++ {
					name, value, hasValue := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
					f := fs.Lookup(name)
					switch {
					case f == nil:
						t.Fatalf("no flag %s", name)
					case !hasValue && f.NoOptDefVal == "":
						i++
						value = args[i]
					case !hasValue:
						value = f.NoOptDefVal
					}
					if got := f.Value.String(); !sameValue(got, value) {
						t.Errorf("--%s is %q, want %q", name, got, value)
					}
				}
				if err := p.Validate(); err != nil {
					t.Errorf("the parsed flags do not validate: %v", err)
				}
			})
		}
	}
}

// sameValue compares a flag's value to how it was written: durations and
// numbers print differently from how people write them.
func sameValue(got, written string) bool {
	if got == written {
		return true
	}
	if d, err := time.ParseDuration(written); err == nil {
		return d.String() == got
	}
	return false
}

// A bad value is refused before the operator starts, as bad usage.
func TestOperatorFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--configmap-mode=readonly"},
		{"--max-removed-share=2"},
		{"--leader-election-lease-duration=5s", "--leader-election-renew-deadline=10s"},
		{"--protection-check-interval=0"},
		{"--access-entry-resync=0"},
		{"--access-entry-resync=5m", "--access-entry-full-resync=1m"},
		{"--eks-api-qps=0"},
		{"--eks-api-qps=-1"},
		{"--eks-api-qps=NaN"},
		{"--eks-api-burst=0"},
		{"-kubeconfig", "/k/config"}, // Go's flag package took one dash; pflag does not
	} {
		p := &parsedOperator{operator: newOperator()}
		var stderr bytes.Buffer
		if code := cli.Execute(args, nil, &bytes.Buffer{}, &stderr, p); code != 2 || p.parsed != nil {
			t.Errorf("%q: exit code %d, ran %t; want 2 and not run; stderr:\n%s", args, code, p.parsed != nil, stderr.String())
		}
	}
}
