// Command manager runs aws-auth-guardian: it keeps kube-system/aws-auth
// equal to the render of all IAMIdentityMappings. Its offline commands
// import an existing aws-auth as mappings and render mappings; see
// `manager --help`, and internal/cli for the command line.
package main

import (
	"embed"
	"os"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
)

// policyFiles are the admission policies as released, built in so that the
// operator can tell an installed policy from a disarmed copy of it. The
// embed lives here because go:embed cannot reach above its package.
//
//go:embed config/policy/*.yaml
var policyFiles embed.FS

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, newOperator()))
}
