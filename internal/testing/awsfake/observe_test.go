package awsfake_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// Observe sees each state the writes went through, in order, and nothing
// for reads or failed calls.
func TestObserveSeesEveryWrite(t *testing.T) {
	s := newFake(t)
	c := eksClient(s, noRetries)
	var states []string
	describe := func(entries []awsfake.AccessEntry) string {
		out := ""
		for _, e := range entries {
			out += fmt.Sprintf("%s:%d ", e.PrincipalARN[len(e.PrincipalARN)-8:], len(e.Policies))
		}
		return out
	}
	if err := s.Observe(clusterName, func(entries []awsfake.AccessEntry) { states = append(states, describe(entries)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN),
		PolicyArn: aws.String(awsfake.PolicyARN("AmazonEKSClusterAdminPolicy")), AccessScope: &types.AccessScope{Type: types.AccessScopeTypeCluster},
	}); err != nil {
		t.Fatal(err)
	}
	// A read and a failed write change nothing.
	if _, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)}); err == nil {
		t.Fatal("a duplicate create succeeded")
	}
	if _, err := c.DeleteAccessEntry(ctx(t), &eks.DeleteAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(roleARN)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Observe(clusterName, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(userARN)}); err != nil {
		t.Fatal(err)
	}
	want := []string{"", "deployer:0 ", "deployer:1 ", ""}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("observed %q, want %q", states, want)
	}
	if err := s.Observe("nope", func([]awsfake.AccessEntry) {}); err == nil {
		t.Fatal("observing an unknown cluster succeeded")
	}
}
