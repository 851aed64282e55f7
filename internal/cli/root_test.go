package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// fakeOperator records what the command line made of it.
type fakeOperator struct {
	leaderElect bool
	batchDelay  time.Duration
	validateErr error
	runErr      error
	ran         int
}

func (f *fakeOperator) BindFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "")
	fs.DurationVar(&f.batchDelay, "batch-delay", 200*time.Millisecond, "")
}

func (f *fakeOperator) Validate() error { return f.validateErr }

func (f *fakeOperator) Run() error {
	f.ran++
	return f.runErr
}

func execute(op Operator, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Execute(args, strings.NewReader(""), &stdout, &stderr, op)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestOperatorRunsWithoutACommandAndWithRun(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--leader-elect", "--batch-delay=1s"},
		{"run", "--leader-elect", "--batch-delay=1s"},
		{"run", "--leader-elect", "--batch-delay", "1s"},
	} {
		op := &fakeOperator{}
		r := execute(op, args...)
		check{code: 0}.assert(t, r)
		if op.ran != 1 || !op.leaderElect || op.batchDelay != time.Second {
			t.Errorf("%q: ran %d times with --leader-elect=%t --batch-delay=%v; want once, true, 1s", args, op.ran, op.leaderElect, op.batchDelay)
		}
	}
}

// Nothing but the operator's own commands may start it: a word that is
// not a command used to be ignored, and started a second operator.
func TestOnlyTheOperatorCommandsStartIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want check
	}{
		{"help", []string{"help"}, check{code: 0, stdout: []string{"Usage:", "manager [command]", "run ", "import ", "render ", "version ", "--leader-elect"}}},
		{"--help", []string{"--help"}, check{code: 0, stdout: []string{"Operator:", "Offline, for GitOps and CI:", "run ", "import ", "render ", "version "}}},
		{"-h", []string{"-h"}, check{code: 0, stdout: []string{"manager [command]"}}},
		{"run --help", []string{"run", "--help"}, check{code: 0, stdout: []string{"manager run [flags]", "--leader-elect", "--batch-delay"}}},
		{"help run", []string{"help", "run"}, check{code: 0, stdout: []string{"manager run [flags]", "--leader-elect"}}},
		{"a misspelt command", []string{"rnu"}, check{code: 2, stderr: []string{`unknown command "rnu" for "manager"`, "Did you mean this?\n\trun\n", "Run 'manager --help' for usage."}}},
		{"a misspelt command with flags", []string{"rnu", "--leader-elect"}, check{code: 2, stderr: []string{`unknown command "rnu"`, "\trun\n"}}},
		{"a word", []string{"help-me"}, check{code: 2, stderr: []string{`unknown command "help-me" for "manager"`, "Run 'manager --help' for usage."}}},
		{"an argument to run", []string{"run", "now"}, check{code: 2, stderr: []string{`"manager run" takes no arguments, only flags; got "now"`, "Run 'manager run --help' for usage."}}},
		{"an argument to version", []string{"version", "--", "x"}, check{code: 2, stderr: []string{`"manager version" takes no arguments`}}},
		{"an unknown flag", []string{"--leader-elec"}, check{code: 2, stderr: []string{"unknown flag: --leader-elec", "Run 'manager --help' for usage."}}},
		{"an unknown flag to run", []string{"run", "--nope"}, check{code: 2, stderr: []string{"unknown flag: --nope", "Run 'manager run --help' for usage."}}},
		{"a Go-style single-dash flag", []string{"-leader-elect"}, check{code: 2, stderr: []string{"unknown shorthand flag"}}},
		{"a bad value", []string{"--batch-delay=soon"}, check{code: 2, stderr: []string{`invalid argument "soon"`, "--batch-delay"}}},
		{"help on an unknown command", []string{"help", "rnu"}, check{code: 2, stderr: []string{`unknown command "rnu"`, "\trun\n"}}},
		{"no completion command", []string{"completion", "bash"}, check{code: 2, stderr: []string{`unknown command "completion"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			op := &fakeOperator{}
			r := execute(op, tt.args...)
			tt.want.assert(t, r)
			if op.ran != 0 {
				t.Errorf("%q started the operator", tt.args)
			}
			if tt.want.code != 0 && r.stdout != "" {
				t.Errorf("%q printed to stdout on an error:\n%s", tt.args, r.stdout)
			}
		})
	}
}

func TestOperatorErrors(t *testing.T) {
	t.Parallel()
	t.Run("bad flags are bad usage", func(t *testing.T) {
		t.Parallel()
		op := &fakeOperator{validateErr: errors.New("--configmap-mode must be one of two")}
		check{code: 2, stderr: []string{"Error: --configmap-mode must be one of two", "Run 'manager run --help' for usage."}}.assert(t, execute(op, "run"))
		if op.ran != 0 {
			t.Errorf("the operator ran on flags that do not validate")
		}
	})
	t.Run("a failed operator exits 1 and has said why in its log", func(t *testing.T) {
		t.Parallel()
		r := execute(&fakeOperator{runErr: errors.New("no cluster")}, "run")
		check{code: 1}.assert(t, r)
		if r.stderr != "" || r.stdout != "" {
			t.Errorf("printed besides the operator's log: stdout %q, stderr %q; a JSON log must stay JSON", r.stdout, r.stderr)
		}
	})
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := execute(&fakeOperator{}, "version")
	check{code: 0, stdout: []string{"aws-auth-guardian ", "commit:", "built:", "go:"}}.assert(t, r)
}

// Every command refuses arguments and has its own help, so that a command
// added later cannot quietly take a misspelt word for input.
func TestEveryCommandRefusesArgumentsAndHasHelp(t *testing.T) {
	t.Parallel()
	root := newRootCommand(nil, &bytes.Buffer{}, &bytes.Buffer{}, &fakeOperator{})
	for _, cmd := range root.Commands() {
		if cmd.Hidden {
			continue
		}
		if cmd.Args == nil || cmd.Args(cmd, []string{"x"}) == nil {
			t.Errorf("%q takes arguments", cmd.CommandPath())
		}
		if cmd.Short == "" {
			t.Errorf("%q has no help", cmd.CommandPath())
		}
	}
	if root.Args == nil || root.Args(root, []string{"x"}) == nil {
		t.Errorf("the root command takes arguments")
	}
}
