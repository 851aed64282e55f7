// Package cli is the command line of the manager binary, built on cobra:
// `manager` and `manager run` run the operator; import turns an existing
// aws-auth into IAMIdentityMapping manifests and render shows the aws-auth
// the operator would write for a set of manifests, both offline for GitOps
// and CI; migrate reads aws-auth and the cluster's access entries and says
// what switching to API mode would take away; version says which build
// this is.
//
// Every command refuses positional arguments, so that a misspelt command
// (`manager rnu`, `manager help-me`) is an error with a suggestion instead
// of starting a second operator against whatever cluster the kubeconfig
// points at.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, the same for every command.
const (
	exitOK = 0
	// exitFindings: the input was read, and something in it needs a
	// person (an entry import cannot represent, a mapping render refuses).
	exitFindings = 1
	// exitOperatorFailed: the operator could not start, or stopped on an
	// error; it says why in its log.
	exitOperatorFailed = 1
	// exitBadInput: the command could not do its job (an unknown command,
	// an argument, bad flags, a file that is missing or holds something
	// else, no cluster).
	exitBadInput = 2
)

// Operator is the operator that `manager` and `manager run` start. Package
// main implements it, because the operator embeds the admission policies
// of config/policy and go:embed cannot reach them from here; this package
// only parses its flags and calls it.
type Operator interface {
	// BindFlags registers the operator's flags on fs. It is called twice,
	// for the root command and for run, with the same destinations: only
	// the command that runs parses its flags.
	BindFlags(fs *pflag.FlagSet)
	// Validate checks the parsed flags; an error is bad usage.
	Validate() error
	// Run runs the operator until it is stopped. It reports its own
	// errors, in its structured log, so an error here only sets the exit
	// code.
	Run() error
}

// Execute runs the command line args (without the program name) and
// returns the process's exit code. Help goes to stdout, errors to stderr.
// op may be nil for a command line of the offline commands only (tests
// drive import and render so, in process).
func Execute(args []string, stdin io.Reader, stdout, stderr io.Writer, op Operator) int {
	root := newRootCommand(stdin, stdout, stderr, op)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if code, ok := errors.AsType[exitError](err); ok {
		return int(code)
	}
	// Anything else comes from cobra or a check of the flags: the command
	// was not given as it must be, and its help says how.
	if cmd == nil {
		cmd = root
	}
	say(stderr, "Error: %v", err)
	say(stderr, "Run '%s --help' for usage.", cmd.CommandPath())
	return exitBadInput
}

// Command groups, in the order `manager --help` lists them.
const (
	groupOperator = "operator"
	groupOffline  = "offline"
)

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer, op Operator) *cobra.Command {
	root := &cobra.Command{
		Use:   "manager",
		Short: "aws-auth-guardian keeps kube-system/aws-auth equal to the render of all IAMIdentityMappings",
		Long: strings.TrimSpace(`
aws-auth-guardian keeps kube-system/aws-auth equal to the render of all
IAMIdentityMappings.

Without a command, manager runs the operator, as "manager run" does, with the
same flags. The offline commands work without the operator, for GitOps and
CI: import turns an existing aws-auth into mappings, render shows the
aws-auth that mappings make, migrate says whether switching the cluster to
access entries only (API mode) would take anyone's access away.`),
		Args: noArgs,
		// Errors are printed once, by Execute, which knows the exit code;
		// a failure at run time is not helped by the usage.
		SilenceErrors: true,
		SilenceUsage:  true,
		// cobra's default, which SuggestionsFor leaves at 0 (no
		// suggestion but for a prefix) unless set: "rnu" gets "run".
		SuggestionsMinimumDistance: 2,
		// An operator image has no shell to complete in.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetHelpCommand(newHelpCommand())
	root.AddGroup(
		&cobra.Group{ID: groupOperator, Title: "Operator:"},
		&cobra.Group{ID: groupOffline, Title: "Offline, for GitOps and CI:"},
	)
	if op != nil {
		// The root command is `manager run` under another name: the
		// Deployment runs the bare binary with the operator's flags.
		op.BindFlags(root.Flags())
		root.RunE = runOperator(op)
		root.AddCommand(newRunCommand(op))
	}
	root.AddCommand(
		newImportCommand(stdin, stdout, stderr),
		newRenderCommand(stdin, stdout, stderr),
		newMigrateCommand(stdin, stdout, stderr),
		newVersionCommand(stdout, stderr),
	)
	return root
}

func newRunCommand(op Operator) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the operator (the default when no command is given)",
		Long: strings.TrimSpace(`
Runs the operator until SIGTERM or SIGINT: it watches the IAMIdentityMappings
and kube-system/aws-auth, and writes aws-auth whenever it differs from their
render. It finds the cluster through --kubeconfig, else KUBECONFIG, else
in-cluster, else ~/.kube/config.

Exit code 1 when the operator fails (it logs why), 2 on bad flags.`),
		Args:    noArgs,
		GroupID: groupOperator,
		RunE:    runOperator(op),
	}
	op.BindFlags(cmd.Flags())
	return cmd
}

func runOperator(op Operator) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		if err := op.Validate(); err != nil {
			return err
		}
		if err := op.Run(); err != nil {
			return exitError(exitOperatorFailed) // logged by the operator
		}
		return nil
	}
}

// newHelpCommand replaces cobra's, which answers a topic it does not know
// (`manager help rnu`) with the root's help and exit code 0.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, rest, err := cmd.Root().Find(args)
			if err != nil {
				return err
			}
			if err := noArgs(topic, rest); err != nil {
				return err
			}
			return topic.Help()
		},
	}
}

// noArgs refuses positional arguments: every input is a flag. On a
// command with subcommands, a word is taken for a misspelt command and
// gets cobra's suggestions ("Did you mean this?"), which cobra.NoArgs
// leaves out (cobra only suggests for a root command without Args).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if !cmd.HasAvailableSubCommands() {
		return fmt.Errorf("%q takes no arguments, only flags; got %q", cmd.CommandPath(), args[0])
	}
	var hint strings.Builder
	if suggestions := cmd.SuggestionsFor(args[0]); len(suggestions) > 0 {
		hint.WriteString("\n\nDid you mean this?\n")
		for _, s := range suggestions {
			hint.WriteString("\t" + s + "\n")
		}
	}
	return fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint.String())
}

// exitError ends a command that has already said what went wrong, with
// its exit code.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// exitWith turns a command's exit code into what its RunE returns.
func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return exitError(code)
}

// say prints a line for the person running the command. A line that
// cannot be written to stderr has nowhere else to go, so its error is
// dropped; the output proper goes through writeOutput.
func say(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format+"\n", args...)
}

// writeOutput writes the command's result in one go and turns a failed
// write (a closed pipe, a full disk) into a failed command, so that CI
// never takes a truncated output for a good one.
func writeOutput(name string, stdout, stderr io.Writer, out []byte) int {
	if _, err := stdout.Write(out); err != nil {
		say(stderr, "%s: writing the output: %v", name, err)
		return exitBadInput
	}
	return exitOK
}
