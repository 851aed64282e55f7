package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/version"
)

func newVersionCommand(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print which build of aws-auth-guardian this is",
		Long:  "Prints the version (git describe), the commit, the build date and the Go toolchain of this binary; put them in a bug report.",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := version.Get()
			out := "aws-auth-guardian " + v.Version + "\n" +
				"commit:     " + v.Commit + "\n" +
				"built:      " + v.BuildDate + "\n" +
				"go:         " + v.GoVersion + " " + v.Platform + "\n"
			return exitWith(writeOutput("version", stdout, stderr, []byte(out)))
		},
	}
}
