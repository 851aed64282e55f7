package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

const migrateDescription = `
Says what switching the cluster to the API authentication mode now would do
to each identity aws-auth grants, before anyone runs
"aws eks update-cluster-config --access-config authenticationMode=API",
which cannot be undone. It changes nothing: it reads aws-auth (from the
cluster, as import does, or from --file) and, with --eks-cluster-name, the
cluster's authentication mode and every access entry with its policies
(eks:DescribeCluster, eks:ListAccessEntries, eks:DescribeAccessEntry,
eks:ListAssociatedAccessPolicies, and iam:GetRole for roles mapped without
their path), with the credentials and region of the AWS SDK's default chain
(AWS_REGION, AWS_PROFILE, IRSA, ...).

For each identity it prints the access entry the operator makes of it (type,
username, groups, policies), whether the cluster has that entry (none,
equal, or differs: which fields), or why it cannot have one. API mode is
blocked by every identity without an equal entry (node roles included), by
what aws-auth holds that cannot be read as a mapping, and when no entry, of
anyone, has AmazonEKSClusterAdminPolicy on the whole cluster. The last line
says "API mode: ready", "API mode: blocked: ..." or, without
--eks-cluster-name, "API mode: not checked".

-o yaml and -o json print the same report for CI (fields described in the
README, "Access entries").

Exit code 0 when nothing blocks API mode (without --eks-cluster-name: every
identity can become an access entry), 1 when something does, 2 when aws-auth
or the cluster cannot be read.`

// Output formats of migrate.
const (
	formatTable = "table"
	formatYAML  = "yaml"
	formatJSON  = "json"
)

// migrateTimeout bounds everything migrate asks of EKS and IAM: describing
// 3,000 entries takes 6,000 calls, ten minutes at migrateRateLimit.
const migrateTimeout = 30 * time.Minute

// migrateRateLimit is gentler than nothing, as EKS throttles per account and
// region and the operator may be calling it too, and quicker than the
// operator's, as a person is waiting.
var migrateRateLimit = eksapi.RateLimit{QPS: 10, Burst: 20}

type migrateOptions struct {
	kubeconfig, file, cluster, output string
}

func newMigrateCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:                   "migrate [--kubeconfig PATH | --file PATH|-] [--eks-cluster-name NAME] [-o table|yaml|json]",
		Short:                 "Say whether switching the cluster to access entries only (API mode) would take anyone's access away",
		Long:                  strings.TrimSpace(migrateDescription),
		Args:                  noArgs,
		GroupID:               groupOffline,
		DisableFlagsInUseLine: true, // the synopsis names them
		RunE: func(*cobra.Command, []string) error {
			if o.file != "" && o.kubeconfig != "" {
				return errors.New("give --file or --kubeconfig, not both")
			}
			if !slices.Contains([]string{formatTable, formatYAML, formatJSON}, o.output) {
				return fmt.Errorf("-o must be table, yaml or json, got %q", o.output)
			}
			return exitWith(runMigrate(o, stdin, stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "", "Read aws-auth from the cluster of the kubeconfig at this `path` (default: KUBECONFIG, then ~/.kube/config, then in-cluster).")
	cmd.Flags().StringVar(&o.file, "file", "", "Read the aws-auth ConfigMap from this YAML `path` instead of the cluster; - reads stdin.")
	cmd.Flags().StringVar(&o.cluster, "eks-cluster-name", "", "Compare with the access entries of this EKS cluster (`name`); without it only the translation is checked.")
	cmd.Flags().StringVarP(&o.output, "output", "o", formatTable, "Output `format`: table, yaml or json.")
	return cmd
}

func runMigrate(o migrateOptions, stdin io.Reader, stdout, stderr io.Writer) int {
	var cm *corev1.ConfigMap
	var err error
	if o.file != "" {
		cm, err = configMapFromFile(o.file, stdin)
	} else {
		cm, err = configMapFromCluster(o.kubeconfig)
	}
	if err != nil {
		say(stderr, "migrate: %v", err)
		return exitBadInput
	}
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()

	adoption := adopt.FromData(cm.Data)
	var roles migrate.Roles
	var cluster *migrate.Cluster
	if o.cluster != "" {
		client, err := eksapi.New(ctx, eksapi.Options{ClusterName: o.cluster, RateLimit: migrateRateLimit, Registerer: prometheus.NewRegistry()})
		if err == nil {
			cluster, err = readCluster(ctx, client)
		}
		if err != nil {
			say(stderr, "migrate: %v", err)
			return exitBadInput
		}
		roles = client
	}
	in := migrate.Input{Unreadable: adoption.Unrepresentable, Cluster: cluster}
	for i := range adoption.Mappings {
		m := &adoption.Mappings[i]
		in.Mappings = append(in.Mappings, migrate.Mapping{Grant: managed.MappingInput(m), Desired: migrate.Desire(ctx, m, roles)})
	}
	report := migrate.Analyze(in)

	var out []byte
	switch o.output {
	case formatJSON:
		out, err = json.MarshalIndent(report, "", "  ")
		out = append(out, '\n')
	case formatYAML:
		out, err = yaml.Marshal(report)
	default:
		out = migrateTable(report, o.cluster)
	}
	if err != nil {
		say(stderr, "migrate: encoding the report: %v", err)
		return exitBadInput
	}
	if code := writeOutput("migrate", stdout, stderr, out); code != exitOK {
		return code
	}
	if report.Verdict == migrate.VerdictBlocked {
		return exitFindings
	}
	return exitOK
}

// readCluster reads the cluster's mode and, when it takes access entries,
// every entry with its policies. Only read calls.
func readCluster(ctx context.Context, c *eksapi.Client) (*migrate.Cluster, error) {
	mode, err := c.AuthenticationMode(ctx)
	if err != nil {
		return nil, err
	}
	cluster := &migrate.Cluster{Mode: mode}
	if mode != "API" && mode != "API_AND_CONFIG_MAP" {
		// EKS refuses every access entry call in CONFIG_MAP mode: there
		// are none.
		return cluster, nil
	}
	arns, err := c.ListEntries(ctx)
	if err != nil {
		return nil, err
	}
	for _, arn := range arns {
		e, err := c.DescribeEntry(ctx, arn)
		switch {
		case eksapi.IsNotFound(err):
			continue // deleted since the list
		case err != nil:
			return nil, err
		}
		cluster.Entries = append(cluster.Entries, migrate.Observed(e))
	}
	return cluster, nil
}

// tableWidth is the width the table's prose is wrapped to.
const tableWidth = 120

// migrateTable is the report for a person: one line per identity, then why
// for each that is not simply equal, the entries aws-auth does not name,
// and the verdict.
func migrateTable(r migrate.Report, cluster string) []byte {
	var b bytes.Buffer
	if r.Checked {
		fmt.Fprintf(&b, "aws-auth: %d identities. Cluster %s: authentication mode %s, %d access entries.\n\n",
			len(r.Identities), cluster, r.AuthenticationMode, r.AccessEntries)
	} else {
		fmt.Fprintf(&b, "aws-auth: %d identities. The cluster's access entries were not read (give --eks-cluster-name).\n\n", len(r.Identities))
	}
	if len(r.Identities) > 0 {
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "IDENTITY\tBECOMES\tEXISTING\tAPI MODE")
		for _, row := range r.Identities {
			verdict := "ok"
			if row.Blocks {
				verdict = "BLOCKS"
			}
			existing := row.Existing
			if len(row.Differs) > 0 {
				existing += ": " + strings.Join(row.Differs, ",")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", shortIdentity(row.Identity), becomes(row), existing, verdict)
		}
		_ = w.Flush() // a bytes.Buffer does not fail
	}
	var why []string
	for _, row := range r.Identities {
		if row.Blocks || (row.Existing != migrate.ExistingEqual && row.Existing != migrate.ExistingNotChecked) {
			why = append(why, fmt.Sprintf("%s (mapping %s): %s.", shortIdentity(row.Identity), row.Mapping, row.Why))
		}
	}
	writeList(&b, "\nWhy:", why)
	var others []string
	for _, e := range r.OtherEntries {
		owner := "not the operator's"
		if e.OwnedBy != "" {
			owner = "the operator's, for mapping " + e.OwnedBy
		}
		others = append(others, fmt.Sprintf("%s: %s (%s).", shortIdentity(e.Entry.PrincipalARN), describeEntry(e.Entry), owner))
	}
	writeList(&b, "\nAccess entries that aws-auth does not name (they keep their access in API mode):", others)
	writeList(&b, "\nIn aws-auth, but not readable as mappings (each blocks API mode until a person decides):", r.Unreadable)
	for _, bl := range r.Blockers {
		if bl.Kind == migrate.BlockClusterAdmin {
			writeList(&b, "\nCluster admin:", []string{bl.Why + "."})
		}
	}
	b.WriteString("\n" + wrap(verdictLine(r), "", "  ", tableWidth))
	return b.Bytes()
}

// verdictLine is the report's verdict, naming each blocker; the table
// wraps it.
func verdictLine(r migrate.Report) string {
	var lose, nodes []string
	parts := []string{}
	for _, b := range r.Blockers {
		switch b.Kind {
		case migrate.BlockIdentity:
			lose = append(lose, shortIdentity(b.Identity))
		case migrate.BlockNode:
			nodes = append(nodes, shortIdentity(b.Identity))
		}
	}
	verb := "would lose or change access"
	if !r.Checked {
		verb = "cannot become access entries"
	}
	if len(lose) > 0 {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", count(len(lose), "identity", "identities"), verb, strings.Join(lose, ", ")))
	}
	if len(nodes) > 0 {
		what := "have no node access entry"
		switch {
		case !r.Checked:
			what = "cannot become node access entries"
		case len(nodes) == 1:
			what = "has no node access entry"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", count(len(nodes), "node role", "node roles"), what, strings.Join(nodes, ", ")))
	}
	if n := countKind(r, migrate.BlockUnreadable); n > 0 {
		parts = append(parts, fmt.Sprintf("%s of aws-auth cannot be read as mappings", count(n, "entry", "entries")))
	}
	if countKind(r, migrate.BlockClusterAdmin) > 0 {
		parts = append(parts, "no access entry has AmazonEKSClusterAdminPolicy on the whole cluster")
	}
	switch r.Verdict {
	case migrate.VerdictReady:
		return "API mode: ready"
	case migrate.VerdictNotChecked:
		return "API mode: not checked (give --eks-cluster-name)"
	}
	line := "API mode: blocked: " + strings.Join(parts, "; ")
	if !r.Checked {
		line += "; the cluster was not checked (give --eks-cluster-name)"
	}
	return line
}

func countKind(r migrate.Report, kind string) int {
	n := 0
	for _, b := range r.Blockers {
		if b.Kind == kind {
			n++
		}
	}
	return n
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// shortIdentity drops what every ARN of the commercial partition repeats.
func shortIdentity(id string) string {
	if !strings.HasPrefix(id, "arn:") {
		return "account " + id
	}
	return strings.TrimPrefix(id, "arn:aws:iam::")
}

func becomes(row migrate.Row) string {
	if row.Becomes == nil {
		return "-"
	}
	return describeEntry(*row.Becomes)
}

// describeEntry is an access entry on one line: its type, then for a
// STANDARD entry its username, groups and policies (with their namespaces),
// by their names without AmazonEKS and Policy.
func describeEntry(e iamv1alpha1.AccessEntryStatus) string {
	parts := []string{string(e.Type)}
	if e.Username != "" {
		parts = append(parts, "user="+e.Username)
	}
	if len(e.KubernetesGroups) > 0 {
		parts = append(parts, "groups="+strings.Join(e.KubernetesGroups, ","))
	}
	for _, p := range e.Policies {
		// AmazonEKSClusterAdminPolicy is +ClusterAdmin: the table has 120
		// columns, and -o yaml gives the full ARNs.
		name := p.PolicyARN[strings.LastIndex(p.PolicyARN, "/")+1:]
		if rest, ok := strings.CutPrefix(name, "AmazonEKS"); ok {
			if short, ok := strings.CutSuffix(rest, "Policy"); ok && short != "" {
				name = short
			}
		}
		if len(p.Namespaces) > 0 {
			name += "[" + strings.Join(p.Namespaces, ",") + "]"
		}
		parts = append(parts, "+"+name)
	}
	return strings.Join(parts, " ")
}

// writeList writes a heading and its items, each wrapped to tableWidth.
func writeList(b *bytes.Buffer, heading string, items []string) {
	if len(items) == 0 {
		return
	}
	b.WriteString(heading + "\n")
	for _, item := range items {
		b.WriteString(wrap(item, "  - ", "    ", tableWidth))
	}
}

// wrap breaks s into lines of at most width at spaces (a longer word stays
// whole), the first prefixed with first, the others with rest.
func wrap(s, first, rest string, width int) string {
	var b strings.Builder
	line := first
	empty := true
	for _, word := range strings.Fields(s) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
