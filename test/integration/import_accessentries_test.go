package integration

import (
	"bytes"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// A cluster in API mode is adopted as it is: `manager import
// --eks-cluster-name` prints mappings for its entries, they are applied to
// the real API server, and the operator then finds every entry equal to
// its mapping's translation. It tags them and changes nothing else: no
// entry is created, updated, deleted, recreated, or has a policy
// associated or disassociated.
func TestImportedAccessEntriesAreAdoptedUnchanged(t *testing.T) {
	g := NewWithT(t)
	fake := startAccessEntryCluster(t, awsfake.ModeAPI)
	seeded := []awsfake.AccessEntry{seedCreator(t, fake)}
	for _, e := range []awsfake.AccessEntry{
		{PrincipalARN: nodesRole, Type: awsfake.TypeEC2Linux},
		{PrincipalARN: aliceUser, Username: "alice", KubernetesGroups: []string{"dev-team", "viewers"}, Policies: []awsfake.AssociatedPolicy{
			{PolicyARN: awsfake.PolicyARN("AmazonEKSViewPolicy"), Scope: awsfake.AccessScope{Type: awsfake.ScopeNamespace, Namespaces: []string{"dev-*", "default"}}},
			{PolicyARN: awsfake.PolicyARN("AmazonEKSSecretReaderPolicy"), Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}},
		}},
		// EKS's default username, the role's path kept.
		{PrincipalARN: adminsRole, Policies: []awsfake.AssociatedPolicy{{PolicyARN: awsfake.PolicyARN("AmazonEKSEditPolicy"), Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}}},
	} {
		s, err := fake.SeedEntry(eksCluster, e)
		g.Expect(err).NotTo(HaveOccurred())
		seeded = append(seeded, s)
	}
	for k, v := range fake.SDKEnvironment(t.TempDir() + "/none") {
		t.Setenv(k, v)
	}

	var stdout, stderr bytes.Buffer
	if code := cli.Execute([]string{"import", "--eks-cluster-name", eksCluster}, strings.NewReader(""), &stdout, &stderr, nil); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr.String())
	}
	var names []string
	for _, doc := range strings.Split(stdout.String(), "\n---\n") {
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(yaml.UnmarshalStrict([]byte(doc), m)).To(Succeed())
		create(t, m)
		names = append(names, m.Name)
	}
	g.Expect(names).To(HaveLen(len(seeded)))

	before := fake.Calls()
	runAccessEntryOperator(t, fake)
	g.Eventually(func(g Gomega) {
		expectSynced(g, names...)
		for _, e := range entriesOf(g, fake) {
			g.Expect(e.Tags).To(HaveKey(accessentry.MappingTag), "entry of %s", e.PrincipalARN)
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	calls := fake.Calls().Since(before)
	for _, op := range calls.Operations() {
		switch op {
		case "DescribeCluster", "ListAccessEntries", "DescribeAccessEntry", "ListAssociatedAccessPolicies", "GetRole", "TagResource":
		default:
			t.Errorf("the operator called %s %d times on a cluster whose mappings were imported from it", op, calls.Total(op))
		}
	}
	entries := entriesOf(g, fake)
	for _, want := range seeded {
		got := entries[want.PrincipalARN]
		// Adopted, not recreated, nothing changed but the tags.
		g.Expect(got.ARN).To(Equal(want.ARN))
		g.Expect(got.CreatedAt).To(Equal(want.CreatedAt))
		g.Expect(got.Username).To(Equal(want.Username))
		g.Expect(got.KubernetesGroups).To(ConsistOf(want.KubernetesGroups))
		g.Expect(got.Policies).To(ConsistOf(want.Policies))
	}
}
