package eksapi

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// The operator's configuration comes from the SDK's standard environment
// variables alone, endpoints included; no option of ours is involved.
func TestNewFromEnvironment(t *testing.T) {
	s := newFake(t)
	noFile := filepath.Join(t.TempDir(), "absent")
	for k, v := range s.SDKEnvironment(noFile) {
		t.Setenv(k, v)
	}
	c, err := New(ctx(t), Options{ClusterName: clusterName, RateLimit: unlimited, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if mode, err := c.AuthenticationMode(ctx(t)); err != nil || mode != awsfake.ModeAPIAndConfigMap {
		t.Errorf("AuthenticationMode() = %q, %v; want %q", mode, err, awsfake.ModeAPIAndConfigMap)
	}
	if arn, err := c.RoleARN(ctx(t), "deployer"); err != nil || arn != roleARN {
		t.Errorf("RoleARN() = %q, %v; want %q", arn, err, roleARN)
	}
	if got := s.Calls(); got.Total("DescribeCluster") != 1 || got.Total("GetRole") != 1 {
		t.Errorf("the fake saw %v, want one DescribeCluster and one GetRole", got)
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Options{
		"no cluster":   {RateLimit: unlimited},
		"no QPS":       {ClusterName: clusterName, RateLimit: RateLimit{Burst: 1}},
		"no burst":     {ClusterName: clusterName, RateLimit: RateLimit{QPS: 1}},
		"negative QPS": {ClusterName: clusterName, RateLimit: RateLimit{QPS: -1, Burst: 1}},
		"zero of all":  {},
	} {
		o.Registerer = prometheus.NewRegistry()
		if _, err := New(ctx(t), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// Two clients on one registry (one per cluster) share the metrics rather
// than fail to register them.
func TestClientsShareMetrics(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c1, reg := newClient(t, s, unlimited)
	c2, err := New(ctx(t), Options{ClusterName: clusterName, RateLimit: unlimited, Registerer: reg, LoadOptions: s.SDKConfig()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{c1, c2} {
		if _, err := c.AuthenticationMode(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := attempts(t, reg, "DescribeCluster", "ok"); got != 2 {
		t.Errorf("DescribeCluster ok attempts = %d, want 2", got)
	}
}

func TestAuthenticationMode(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	for _, mode := range []string{awsfake.ModeAPIAndConfigMap, awsfake.ModeAPI} {
		if mode != awsfake.ModeAPIAndConfigMap {
			if err := s.SetAuthenticationMode(clusterName, mode); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.AuthenticationMode(ctx(t))
		if err != nil || got != mode {
			t.Errorf("AuthenticationMode() = %q, %v; want %q", got, err, mode)
		}
	}
	if got := attempts(t, reg, "DescribeCluster", "ok"); got != 2 {
		t.Errorf("DescribeCluster ok attempts = %d, want 2", got)
	}
}

// Each write is checked against the fake's own record, and each read
// against what the writes left.
func TestEntryLifecycle(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newClient(t, s, unlimited)
	view := awsfake.PolicyARN("AmazonEKSViewPolicy")
	edit := awsfake.PolicyARN("AmazonEKSEditPolicy")

	created, err := c.CreateEntry(ctx(t), Entry{
		PrincipalARN: roleARN,
		Username:     "deployer",
		Groups:       []string{"deployers"},
		Tags:         map[string]string{"owner": "aws-auth-guardian"},
		Policies:     []Policy{{PolicyARN: view, Scope: Scope{Type: ScopeCluster}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, s)
	want := Entry{
		PrincipalARN: roleARN, Type: awsfake.TypeStandard, Username: "deployer", Groups: []string{"deployers"},
		Tags: map[string]string{"owner": "aws-auth-guardian"}, ARN: snap[0].ARN,
	}
	if diff := cmp.Diff(want, created); diff != "" || len(snap) != 1 || snap[0].ARN == "" {
		t.Fatalf("CreateEntry returned (-want +got):\n%s\nthe fake holds %+v", diff, snap)
	}
	if len(snap[0].Policies) != 0 {
		t.Errorf("CreateEntry associated %v; policies are AssociatePolicy's", snap[0].Policies)
	}

	// A node entry gets its type and the username EKS gives it.
	node, err := c.CreateEntry(ctx(t), Entry{PrincipalARN: nodeRoleARN, Type: awsfake.TypeEC2Linux})
	if err != nil {
		t.Fatal(err)
	}
	if node.Type != awsfake.TypeEC2Linux || node.Username == "" {
		t.Errorf("CreateEntry(EC2_LINUX) = %+v, want the type and EKS's username", node)
	}

	if err := c.UpdateEntry(ctx(t), roleARN, "deploy-bot", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if e := deployerEntry(t, s); e.Username != "deploy-bot" || !slices.Equal(e.KubernetesGroups, []string{"a", "b"}) {
		t.Errorf("after UpdateEntry the fake holds %+v", e)
	}
	// No username keeps it; no groups clears them.
	if err := c.UpdateEntry(ctx(t), roleARN, "", nil); err != nil {
		t.Fatal(err)
	}
	if e := deployerEntry(t, s); e.Username != "deploy-bot" || len(e.KubernetesGroups) != 0 {
		t.Errorf("after UpdateEntry(\"\", nil) the fake holds %+v, want the username kept and no groups", e)
	}

	if err := c.AssociatePolicy(ctx(t), roleARN, view, Scope{Type: ScopeCluster}); err != nil {
		t.Fatal(err)
	}
	if err := c.AssociatePolicy(ctx(t), roleARN, edit, Scope{Type: ScopeNamespace, Namespaces: []string{"apps", "web"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.TagEntry(ctx(t), created.ARN, map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.DescribeEntry(ctx(t), roleARN)
	if err != nil {
		t.Fatal(err)
	}
	want = Entry{
		PrincipalARN: roleARN, Type: awsfake.TypeStandard, Username: "deploy-bot",
		Tags: map[string]string{"owner": "aws-auth-guardian", "team": "payments"},
		Policies: []Policy{
			{PolicyARN: edit, Scope: Scope{Type: ScopeNamespace, Namespaces: []string{"apps", "web"}}},
			{PolicyARN: view, Scope: Scope{Type: ScopeCluster}},
		},
		ARN: created.ARN,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("DescribeEntry (-want +got):\n%s", diff)
	}

	if err := c.UntagEntry(ctx(t), created.ARN, []string{"team", "absent"}); err != nil {
		t.Fatal(err)
	}
	if tags := deployerEntry(t, s).Tags; !maps.Equal(tags, map[string]string{"owner": "aws-auth-guardian"}) {
		t.Errorf("after UntagEntry the fake holds tags %v, want only owner", tags)
	}

	if err := c.DisassociatePolicy(ctx(t), roleARN, view); err != nil {
		t.Fatal(err)
	}
	if ps := deployerEntry(t, s).Policies; len(ps) != 1 || ps[0].PolicyARN != edit {
		t.Errorf("after DisassociatePolicy the fake holds policies %+v, want only %s", ps, edit)
	}

	if err := c.DeleteEntry(ctx(t), roleARN); err != nil {
		t.Fatal(err)
	}
	if snap := snapshot(t, s); len(snap) != 1 || snap[0].PrincipalARN != nodeRoleARN {
		t.Errorf("after DeleteEntry the fake holds %+v, want only %s", snap, nodeRoleARN)
	}
}

// A resync lists 250 entries in ceil(250/100) = 3 calls.
func TestListEntriesPaginates(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, reg := newClient(t, s, unlimited)
	var want []string
	for i := range 250 {
		arn := fmt.Sprintf("arn:aws:iam::%s:role/r%03d", account, i)
		if _, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: arn}); err != nil {
			t.Fatal(err)
		}
		want = append(want, arn)
	}
	got, err := c.ListEntries(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListEntries (-want +got):\n%s", diff)
	}
	if calls := s.Calls(); calls.Total("ListAccessEntries") != 3 || calls["ListAccessEntries"][awsfake.OutcomeOK] != 3 {
		t.Errorf("the fake saw %v, want 3 ListAccessEntries", calls)
	}
	if got := attempts(t, reg, "ListAccessEntries", "ok"); got != 3 {
		t.Errorf("ListAccessEntries ok attempts = %d, want 3", got)
	}
}

func TestListEntriesOfEmptyCluster(t *testing.T) {
	t.Parallel()
	s := newFake(t)
	c, _ := newClient(t, s, unlimited)
	got, err := c.ListEntries(ctx(t))
	if err != nil || len(got) != 0 {
		t.Errorf("ListEntries() = %v, %v; want none", got, err)
	}
	if n := s.Calls().Total("ListAccessEntries"); n != 1 {
		t.Errorf("ListAccessEntries calls = %d, want 1", n)
	}
}

// deployerEntry is the fake's record of roleARN's access entry.
func deployerEntry(t *testing.T, s *awsfake.Server) awsfake.AccessEntry {
	t.Helper()
	for _, e := range snapshot(t, s) {
		if e.PrincipalARN == roleARN {
			return e
		}
	}
	t.Fatalf("the fake holds no access entry of %s", roleARN)
	return awsfake.AccessEntry{}
}

func snapshot(t *testing.T, s *awsfake.Server) []awsfake.AccessEntry {
	t.Helper()
	snap, err := s.Snapshot(clusterName)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
