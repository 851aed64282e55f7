package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/smithy-go"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// defaultState is where hack/run-local.sh has localcluster write the fake's
// state when RUN_LOCAL_DIR is left as it is.
const defaultState = "bin/local/eks-fake.env"

const entriesUsage = `Usage:
  localcluster entries [--state FILE]                    list the fake EKS cluster's access entries
  localcluster entries [--state FILE] delete PRINCIPAL   delete one, as someone else would

The fake is the one ` + "`make run EKS=fake`" + ` serves; FILE is where it wrote its
address (default ` + defaultState + `). MAPPING-TAG is the tag
` + accessentry.MappingTag + ` that makes an entry the operator's; "-" means not ours.
`

// entries is `localcluster entries`: what the fake EKS holds, read through
// the real EKS client as the operator reads it, so that a person watching
// `make run EKS=fake` sees access entries appear and come back.
func entries(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("entries", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, entriesUsage) }
	state := fs.String("state", defaultState, "The state file of the fake EKS.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var do func(context.Context, *eks.Client, string) error
	switch rest := fs.Args(); {
	case len(rest) == 0:
		do = func(ctx context.Context, c *eks.Client, cluster string) error { return list(ctx, c, cluster, stdout) }
	case len(rest) == 2 && rest[0] == "delete":
		principal := rest[1]
		do = func(ctx context.Context, c *eks.Client, cluster string) error {
			if _, err := c.DeleteAccessEntry(ctx, &eks.DeleteAccessEntryInput{ClusterName: &cluster, PrincipalArn: &principal}); err != nil {
				return err
			}
			_, err := fmt.Fprintf(stdout, "Deleted the access entry of %s; if it is the operator's, it is back within --access-entry-resync.\n", principal)
			return err
		}
	default:
		fs.Usage()
		return 2
	}
	env, err := readState(*state)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "localcluster entries:", err)
		return 1
	}
	// The client is built from the state file alone, not the SDK's default
	// chain: the person's own AWS profile or variables must not point it
	// at a real account.
	client := eks.NewFromConfig(aws.Config{
		Region:      env["AWS_REGION"],
		Credentials: credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], ""),
	}, func(o *eks.Options) { o.BaseEndpoint = aws.String(env["AWS_ENDPOINT_URL_EKS"]) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := do(ctx, client, env[stateClusterKey]); err != nil {
		// AWS's own words (ResourceNotFoundException: ...), without the
		// SDK's framing of operation, status and request ID.
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			err = fmt.Errorf("%s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
		}
		_, _ = fmt.Fprintln(stderr, "localcluster entries:", err)
		return 1
	}
	return 0
}

// list prints one line per access entry: what EKS grants, and whose it is.
func list(ctx context.Context, c *eks.Client, cluster string, out io.Writer) error {
	var principals []string
	pages := eks.NewListAccessEntriesPaginator(c, &eks.ListAccessEntriesInput{ClusterName: &cluster})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		principals = append(principals, page.AccessEntries...)
	}
	slices.Sort(principals)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "PRINCIPAL\tTYPE\tUSERNAME\tGROUPS\tPOLICIES\tMAPPING-TAG")
	for _, p := range principals {
		e, err := c.DescribeAccessEntry(ctx, &eks.DescribeAccessEntryInput{ClusterName: &cluster, PrincipalArn: &p})
		if err != nil {
			return err
		}
		var policies []string
		pols := eks.NewListAssociatedAccessPoliciesPaginator(c, &eks.ListAssociatedAccessPoliciesInput{ClusterName: &cluster, PrincipalArn: &p})
		for pols.HasMorePages() {
			page, err := pols.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, ap := range page.AssociatedAccessPolicies {
				arn := aws.ToString(ap.PolicyArn)
				scope := "cluster"
				if ap.AccessScope != nil && len(ap.AccessScope.Namespaces) > 0 {
					scope = strings.Join(ap.AccessScope.Namespaces, ",")
				}
				policies = append(policies, arn[strings.LastIndex(arn, "/")+1:]+"("+scope+")")
			}
		}
		a := e.AccessEntry
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p, aws.ToString(a.Type), aws.ToString(a.Username),
			orDash(strings.Join(a.KubernetesGroups, ",")), orDash(strings.Join(policies, ",")), orDash(a.Tags[accessentry.MappingTag]))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// The main of `localcluster entries`, apart so that main stays the
// control plane's.
func entriesMain(args []string) {
	os.Exit(entries(args, os.Stdout, os.Stderr))
}
