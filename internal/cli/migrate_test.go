package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

var update = flag.Bool("update", false, "rewrite testdata/migrate-table.golden from this run")

const (
	clusterAdminPolicy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
	// adminsInIAM is role/admins as IAM holds it: aws-auth names it
	// without its path, the access entry with it.
	adminsInIAM = "arn:aws:iam::" + acct + ":role/platform/admins"
)

// migrateData is an aws-auth on its way to access entries: the node role
// and the admins have their entries (the admins' at the role's path), bob's
// entry has other groups, alice has none, and an account cannot move.
var migrateData = map[string]string{
	"mapRoles": `- rolearn: ` + roleARN("eks-node-group-1") + `
  username: system:node:{{EC2PrivateDNSName}}
  groups: [system:bootstrappers, system:nodes]
- rolearn: ` + roleARN("admins") + `
  username: admin:{{SessionName}}
  groups: [system:masters]
`,
	"mapUsers": `- userarn: ` + userARN("bob") + `
  username: bob
  groups: [dev]
- userarn: ` + userARN("alice") + `
  username: alice
  groups: [dev]
`,
	"mapAccounts": "- 444455556666\n",
}

// readyData is the part of migrateData whose entries EKS holds.
var readyData = map[string]string{"mapRoles": migrateData["mapRoles"]}

// fakeEKS starts the fake with cluster dev in mode and the entries of
// migrateData that exist, plus the creator's, and points the SDK's
// environment at it, as the operator's Deployment would: region,
// credentials and endpoints.
func fakeEKS(t *testing.T, mode string) *awsfake.Server {
	t.Helper()
	s := awsfake.New()
	t.Cleanup(s.Close)
	if _, err := s.SeedCluster(awsfake.Cluster{Name: "dev", AuthenticationMode: mode}); err != nil {
		t.Fatal(err)
	}
	if err := s.SeedPrincipals(adminsInIAM, roleARN("eks-node-group-1"), userARN("bob"), userARN("alice"), roleARN("creator")); err != nil {
		t.Fatal(err)
	}
	if mode != awsfake.ModeConfigMap {
		for _, e := range []awsfake.AccessEntry{
			{PrincipalARN: roleARN("creator"), Policies: []awsfake.AssociatedPolicy{{PolicyARN: clusterAdminPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}}},
			{PrincipalARN: roleARN("eks-node-group-1"), Type: awsfake.TypeEC2Linux},
			{PrincipalARN: adminsInIAM, Username: "admin:{{SessionName}}", Tags: map[string]string{"iam.aws-auth-guardian.dev/mapping": "role-111122223333-admins"},
				Policies: []awsfake.AssociatedPolicy{{PolicyARN: clusterAdminPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}}},
			{PrincipalARN: userARN("bob"), Username: "bob", KubernetesGroups: []string{"ops"}},
		} {
			if _, err := s.SeedEntry("dev", e); err != nil {
				t.Fatal(err)
			}
		}
	}
	noFile := filepath.Join(t.TempDir(), "absent")
	for k, v := range s.SDKEnvironment(noFile) {
		t.Setenv(k, v)
	}
	return s
}

// readCalls are the only operations migrate may call.
var readCalls = []string{"DescribeCluster", "ListAccessEntries", "DescribeAccessEntry", "ListAssociatedAccessPolicies", "GetRole"}

func assertOnlyReads(t *testing.T, s *awsfake.Server) {
	t.Helper()
	for _, op := range s.Calls().Operations() {
		if !slices.Contains(readCalls, op) {
			t.Errorf("migrate called %s, which is not a read", op)
		}
	}
}

// TestMigrateAgainstEKS drives the command through the real SDK against
// the fake EKS and IAM over loopback. Not parallel: the SDK reads its
// configuration from the environment.
func TestMigrateAgainstEKS(t *testing.T) {
	s := fakeEKS(t, awsfake.ModeAPIAndConfigMap)
	before, err := s.Snapshot("dev")
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"aws-auth.yaml": configMapYAML(t, migrateData), "ready.yaml": configMapYAML(t, readyData)})

	t.Run("table", func(t *testing.T) {
		r := run(t, dir, "", "migrate", "--file", "aws-auth.yaml", "--eks-cluster-name", "dev")
		check{code: 1, stdout: []string{
			"Cluster dev: authentication mode API_AND_CONFIG_MAP, 4 access entries.",
			"111122223333:role/admins            STANDARD user=admin:{{SessionName}} +ClusterAdmin  equal",
			"111122223333:role/eks-node-group-1  EC2_LINUX",
			"111122223333:user/bob               STANDARD user=bob groups=dev",
			"differs: groups",
			"111122223333:user/alice (mapping user-111122223333-alice): no access entry yet",
			"an accountID mapping has no",
			"111122223333:role/creator: STANDARD",
			"API mode: blocked: 3 identities would lose or change access (account 444455556666, 111122223333:user/alice,\n  111122223333:user/bob)\n",
		}}.assert(t, r)
		for i, line := range strings.Split(r.stdout, "\n") {
			if len(line) > tableWidth {
				t.Errorf("line %d is %d characters wide, more than %d: %q", i+1, len(line), tableWidth, line)
			}
		}
		golden := filepath.Join("testdata", "migrate-table.golden")
		if *update {
			if err := os.WriteFile(golden, []byte(r.stdout), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(string(want), r.stdout); diff != "" {
			t.Errorf("the table is not %s (go test ./internal/cli -run TestMigrateAgainstEKS -update rewrites it) (-want +got):\n%s", golden, diff)
		}
		// The README shows this run.
		readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "--eks-cluster-name dev\n"+string(want)+"```") {
			t.Errorf("README.md does not show %s as the example of manager migrate", golden)
		}
	})

	wantBlockers := []migrate.Blocker{
		{Kind: migrate.BlockIdentity, Mapping: "account-444455556666", Identity: "444455556666"},
		{Kind: migrate.BlockIdentity, Mapping: "user-111122223333-alice", Identity: userARN("alice")},
		{Kind: migrate.BlockIdentity, Mapping: "user-111122223333-bob", Identity: userARN("bob")},
	}
	ignoreWhy := func(bs []migrate.Blocker) []migrate.Blocker {
		out := slices.Clone(bs)
		for i := range out {
			out[i].Why = ""
		}
		return out
	}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			r := run(t, dir, "", "migrate", "--file", "aws-auth.yaml", "--eks-cluster-name", "dev", "-o", format)
			if r.code != 1 {
				t.Fatalf("exit code %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			var got migrate.Report
			unmarshal := json.Unmarshal
			if format == "yaml" {
				unmarshal = func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }
			}
			if err := unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("not %s: %v\n%s", format, err, r.stdout)
			}
			if got.Verdict != migrate.VerdictBlocked || got.AuthenticationMode != "API_AND_CONFIG_MAP" || !got.Checked || got.AccessEntries != 4 {
				t.Errorf("verdict %q, mode %q, checked %t, %d entries; want blocked, API_AND_CONFIG_MAP, checked, 4", got.Verdict, got.AuthenticationMode, got.Checked, got.AccessEntries)
			}
			if diff := gocmp.Diff(wantBlockers, ignoreWhy(got.Blockers)); diff != "" {
				t.Errorf("blockers (-want +got):\n%s", diff)
			}
			i := slices.IndexFunc(got.Identities, func(r migrate.Row) bool { return r.Mapping == "role-111122223333-admins" })
			if i < 0 || got.Identities[i].Becomes == nil || got.Identities[i].Becomes.PrincipalARN != adminsInIAM || got.Identities[i].OwnedBy != "role-111122223333-admins" {
				t.Errorf("the admins' row does not name the role's path nor its owner: %+v", got.Identities)
			}
		})
	}
	// The field names are the report's contract with CI.
	t.Run("json field names", func(t *testing.T) {
		r := run(t, dir, "", "migrate", "--file", "aws-auth.yaml", "--eks-cluster-name", "dev", "-o", "json")
		for _, field := range []string{`"authenticationMode"`, `"checked"`, `"accessEntries"`, `"identities"`, `"mapping"`, `"identity"`, `"becomes"`, `"principalARN"`,
			`"existing"`, `"differs"`, `"ownedBy"`, `"blocks"`, `"why"`, `"cannotMove"`, `"otherEntries"`, `"blockers"`, `"kind"`, `"verdict"`, `"node"`} {
			if !strings.Contains(r.stdout, field) {
				t.Errorf("the JSON report has no field %s", field)
			}
		}
	})
	t.Run("ready", func(t *testing.T) {
		check{code: 0, stdout: []string{"API mode: ready\n"}, notStdout: []string{"BLOCKS"}}.assert(t, run(t, dir, "", "migrate", "--file", "ready.yaml", "--eks-cluster-name", "dev"))
	})
	t.Run("no such cluster", func(t *testing.T) {
		check{code: 2, stderr: []string{"migrate: describing cluster prod", "ResourceNotFoundException"}}.assert(t, run(t, dir, "", "migrate", "--file", "ready.yaml", "--eks-cluster-name", "prod"))
	})
	t.Run("EKS failing", func(t *testing.T) {
		s.SetFault("ListAccessEntries", awsfake.Fault{ServerErrorRate: 1})
		defer s.ClearFaults()
		check{code: 2, stderr: []string{"migrate: listing the access entries of dev"}}.assert(t, run(t, dir, "", "migrate", "--file", "ready.yaml", "--eks-cluster-name", "dev"))
	})

	after, err := s.Snapshot("dev")
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(before, after); diff != "" {
		t.Errorf("migrate changed the access entries (-before +after):\n%s", diff)
	}
	assertOnlyReads(t, s)
}

// A cluster in CONFIG_MAP mode takes no access entries: every identity
// and the cluster admin block, and no access entry call is made (EKS
// refuses them in that mode).
func TestMigrateConfigMapCluster(t *testing.T) {
	s := fakeEKS(t, awsfake.ModeConfigMap)
	dir := writeFiles(t, map[string]string{"ready.yaml": configMapYAML(t, readyData)})
	check{code: 1, stdout: []string{
		"authentication mode CONFIG_MAP, 0 access entries",
		"API mode: blocked: 1 identity would lose or change access (111122223333:role/admins); 1 node role has no node access\n  entry (111122223333:role/eks-node-group-1); no access entry has AmazonEKSClusterAdminPolicy on the whole cluster\n",
	}}.assert(t, run(t, dir, "", "migrate", "--file", "ready.yaml", "--eks-cluster-name", "dev"))
	if got := s.Calls().Operations(); !slices.Equal(got, []string{"DescribeCluster", "GetRole"}) {
		t.Errorf("calls %v, want DescribeCluster and GetRole only", got)
	}
}

// Without --eks-cluster-name only the translation is checked: no AWS call,
// and the exit code says whether every identity can move.
func TestMigrateOffline(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"aws-auth.yaml": configMapYAML(t, migrateData), "ready.yaml": configMapYAML(t, readyData), "two.yaml": configMapYAML(t, readyData) + "---\n" + configMapYAML(t, readyData)})
	tests := []struct {
		name string
		args []string
		want check
	}{
		{"every identity can move", []string{"--file", "ready.yaml"},
			check{code: 0, stdout: []string{"not read (give --eks-cluster-name)", "EC2_LINUX", "notChecked", "API mode: not checked (give --eks-cluster-name)\n"}}},
		{"an account cannot move", []string{"--file", "aws-auth.yaml"},
			check{code: 1, stdout: []string{"an accountID mapping has no", "API mode: blocked: 1 identity cannot become access entries (account 444455556666); the cluster was not checked"}}},
		{"from stdin", []string{"--file", "-"}, check{code: 0, stdout: []string{"API mode: not checked"}}},
		{"json", []string{"--file", "ready.yaml", "-o", "json"}, check{code: 0, stdout: []string{`"verdict": "notChecked"`, `"checked": false`}}},
		{"an unknown format", []string{"--file", "ready.yaml", "-o", "wide"}, check{code: 2, stderr: []string{"-o must be table, yaml or json"}}},
		{"a missing file", []string{"--file", "absent.yaml"}, check{code: 2, stderr: []string{"migrate: ", "absent.yaml"}}},
		{"two objects", []string{"--file", "two.yaml"}, check{code: 2, stderr: []string{"holds 2 objects"}}},
		{"file and kubeconfig", []string{"--file", "ready.yaml", "--kubeconfig", "k"}, check{code: 2, stderr: []string{"give --file or --kubeconfig, not both"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.want.assert(t, run(t, dir, configMapYAML(t, readyData), append([]string{"migrate"}, tt.args...)...))
		})
	}
}
