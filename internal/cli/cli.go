// Package cli holds the subcommands of the operator binary that work
// without the manager, for GitOps and CI: import turns an existing aws-auth
// into IAMIdentityMapping manifests, render shows the aws-auth the operator
// would write for a set of manifests.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes, the same for every subcommand.
const (
	exitOK = 0
	// exitFindings: the input was read, and something in it needs a
	// person (an entry import cannot represent, a mapping render refuses).
	exitFindings = 1
	// exitBadInput: the command could not do its job (bad flags, a file
	// that is missing or holds something else, no cluster).
	exitBadInput = 2
)

// Run runs a subcommand named by args[0] ("import" or "render"). handled is
// false when args[0] is not one of them (then the binary runs the manager).
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) (handled bool, exitCode int) {
	if len(args) == 0 {
		return false, exitOK
	}
	switch args[0] {
	case "import":
		return true, runImport(args[1:], stdin, stdout, stderr)
	case "render":
		return true, runRender(args[1:], stdin, stdout, stderr)
	}
	return false, exitOK
}

// newFlagSet returns a flag set whose -h prints usage (the synopsis, a
// description and the flags) to stderr.
func newFlagSet(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		say(stderr, "Usage: manager %s %s\n\n%s\n\nFlags:", name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; done is true when the command must stop with
// code (help asked for, or bad flags, which the flag package has already
// reported).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitBadInput, true
	}
	if fs.NArg() > 0 {
		say(fs.Output(), "%s: unexpected argument %q (every input is given with a flag)", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitBadInput, true
	}
	return exitOK, false
}

// fileList is a flag that may be given several times.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

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
