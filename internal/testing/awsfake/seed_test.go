package awsfake_test

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr *awsfake.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != code {
		t.Fatalf("want an *awsfake.APIError %s, got %v", code, err)
	}
}

// TestSeedingObeysTheRules: seeding refuses what the API refuses, so that
// a test cannot start from a state AWS would not allow.
func TestSeedingObeysTheRules(t *testing.T) {
	s := newFake(t)
	_, err := s.SeedEntry(clusterName, awsfake.AccessEntry{PrincipalARN: roleARN, KubernetesGroups: []string{"system:masters"}})
	wantAPIError(t, err, "InvalidParameterException")
	_, err = s.SeedEntry(clusterName, awsfake.AccessEntry{
		PrincipalARN: nodeRoleARN, Type: awsfake.TypeEC2Linux,
		Policies: []awsfake.AssociatedPolicy{{PolicyARN: viewPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}},
	})
	wantAPIError(t, err, "InvalidParameterException")
	if snap, _ := s.Snapshot(clusterName); len(snap) != 0 {
		t.Errorf("refused seeds left entries: %+v", snap)
	}
	_, err = s.SeedCluster(awsfake.Cluster{Name: clusterName})
	wantAPIError(t, err, "ResourceInUseException")
	_, err = s.SeedEntry("nope", awsfake.AccessEntry{PrincipalARN: roleARN})
	wantAPIError(t, err, "ResourceNotFoundException")
	wantAPIError(t, s.SeedPrincipals("arn:aws:sts::"+account+":assumed-role/x/y"), "ValidationError")
	wantAPIError(t, s.SeedPrincipals(roleARN), "EntityAlreadyExists")

	// A seeded entry may name a principal IAM no longer has.
	gone := "arn:aws:iam::" + account + ":role/gone"
	e, err := s.SeedEntry(clusterName, awsfake.AccessEntry{
		PrincipalARN: gone,
		Policies:     []awsfake.AssociatedPolicy{{PolicyARN: viewPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeNamespace, Namespaces: []string{"a"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.ARN == "" || e.Username == "" || e.CreatedAt.IsZero() || len(e.Policies) != 1 || e.Policies[0].AssociatedAt.IsZero() {
		t.Errorf("seeded entry not filled in: %+v", e)
	}
}

// TestModifyEntry changes an entry out of band and reads it back over the
// API, as an operator meeting someone else's change would.
func TestModifyEntry(t *testing.T) {
	clk := awsfake.NewClock()
	s := newFake(t, awsfake.WithClock(clk.Now))
	c := eksClient(s, noRetries)
	seeded, err := s.SeedEntry(clusterName, awsfake.AccessEntry{
		PrincipalARN: roleARN, KubernetesGroups: []string{"deployers"},
		Policies: []awsfake.AssociatedPolicy{{PolicyARN: viewPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)

	adminPolicy := awsfake.PolicyARN("AmazonEKSAdminPolicy")
	changed, err := s.ModifyEntry(clusterName, roleARN, func(e *awsfake.AccessEntry) {
		e.KubernetesGroups = append(e.KubernetesGroups, "intruders")
		e.Policies = append(e.Policies, awsfake.AssociatedPolicy{PolicyARN: adminPolicy, Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !changed.ModifiedAt.Equal(clk.Now()) || !changed.CreatedAt.Equal(seeded.CreatedAt) {
		t.Errorf("timestamps after ModifyEntry: created %v modified %v", changed.CreatedAt, changed.ModifiedAt)
	}
	if got := changed.Policies; len(got) != 2 || got[0].PolicyARN != adminPolicy || !got[0].AssociatedAt.Equal(clk.Now()) ||
		got[1].PolicyARN != viewPolicy || !got[1].ModifiedAt.Equal(seeded.Policies[0].ModifiedAt) {
		t.Errorf("policies after ModifyEntry: %+v", got)
	}

	desc, err := c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(desc.AccessEntry.KubernetesGroups, []string{"deployers", "intruders"}) {
		t.Errorf("groups over the API = %v", desc.AccessEntry.KubernetesGroups)
	}

	// "You can't change the type after the access entry is created", nor
	// the principal; other rules hold as over the API.
	for name, change := range map[string]func(*awsfake.AccessEntry){
		"type":         func(e *awsfake.AccessEntry) { e.Type = awsfake.TypeEC2Linux },
		"principal":    func(e *awsfake.AccessEntry) { e.PrincipalARN = userARN },
		"system group": func(e *awsfake.AccessEntry) { e.KubernetesGroups = []string{"system:masters"} },
		"username":     func(e *awsfake.AccessEntry) { e.Username = "eks:me" },
		"scope": func(e *awsfake.AccessEntry) {
			e.Policies[0].Scope = awsfake.AccessScope{Type: awsfake.ScopeNamespace}
		},
	} {
		_, err := s.ModifyEntry(clusterName, roleARN, change)
		wantAPIError(t, err, "InvalidParameterException")
		if snap, _ := s.Snapshot(clusterName); !slices.Equal(snap[0].KubernetesGroups, []string{"deployers", "intruders"}) || snap[0].Type != awsfake.TypeStandard {
			t.Errorf("refused change %q altered the entry: %+v", name, snap[0])
		}
	}

	if err := s.DeleteEntry(clusterName, roleARN); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)})
	wantCode(t, err, "ResourceNotFoundException", 404)
	wantAPIError(t, s.DeleteEntry(clusterName, roleARN), "ResourceNotFoundException")
}

// TestSetAuthenticationMode: an out-of-band mode change obeys the one-way
// rule of https://docs.aws.amazon.com/eks/latest/userguide/grant-k8s-access.html#set-cam.
func TestSetAuthenticationMode(t *testing.T) {
	s := newFake(t)
	if err := s.SetAuthenticationMode(clusterName, awsfake.ModeAPI); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, s.SetAuthenticationMode(clusterName, awsfake.ModeAPIAndConfigMap), "InvalidParameterException")
	out, err := eksClient(s, noRetries).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.Cluster.AccessConfig.AuthenticationMode); got != awsfake.ModeAPI {
		t.Errorf("mode over the API = %s, want API", got)
	}
}

// TestCallCountsAtRest is the assertion a steady-state test makes: after
// the counters are reset, only ListAccessEntries was called.
func TestCallCountsAtRest(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	for range 3 {
		if _, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException", 404)

	calls := s.Calls()
	if got := calls.Operations(); !slices.Equal(got, []string{"ListAccessEntries"}) {
		t.Errorf("operations called = %v, want only ListAccessEntries", got)
	}
	if calls["ListAccessEntries"][awsfake.OutcomeOK] != 3 || calls["ListAccessEntries"]["ResourceNotFoundException"] != 1 || calls.Total("ListAccessEntries") != 4 {
		t.Errorf("ListAccessEntries outcomes = %v", calls["ListAccessEntries"])
	}
	// Since is what came between two looks.
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	since := s.Calls().Since(calls)
	if want := (awsfake.CallCounts{"DescribeCluster": {awsfake.OutcomeOK: 1}}); !maps.EqualFunc(since, want, maps.Equal) {
		t.Errorf("Calls().Since = %v, want %v", since, want)
	}
	// Calls returns a copy.
	calls["ListAccessEntries"]["OK"] = 99
	if s.Calls()["ListAccessEntries"]["OK"] != 3 {
		t.Error("changing the result of Calls changed the counters")
	}
}

// TestLoopbackOnly: the fake takes any credentials, so it must not listen
// beyond the machine.
func TestLoopbackOnly(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New listened on a non-loopback address")
		}
	}()
	s := awsfake.New(awsfake.WithAddress("0.0.0.0:0"))
	s.Close()
}
