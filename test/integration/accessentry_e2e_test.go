package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/mappingtest"
)

// More principals of the access entry tests.
const (
	windowsRole = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/windows-nodes"
	fargateRole = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/fargate"
	hybridRole  = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/hybrid"
	bobUser     = "arn:aws:iam::" + awsfake.DefaultAccountID + ":user/bob"
	// strangerRole has an entry someone else made, for no mapping.
	strangerRole = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/stranger"
)

// withAccessPolicy adds one access policy, on the namespaces given or the
// whole cluster.
func withAccessPolicy(policy string, namespaces ...iamv1alpha1.AccessPolicyNamespace) mappingtest.Option {
	return func(m *iamv1alpha1.IAMIdentityMapping) {
		m.Spec.AccessPolicies = append(m.Spec.AccessPolicies, iamv1alpha1.AccessPolicy{Policy: policy, Namespaces: namespaces})
	}
}

func seedPrincipals(t *testing.T, fake *awsfake.Server, arns ...string) {
	t.Helper()
	if err := fake.SeedPrincipals(arns...); err != nil {
		t.Fatal(err)
	}
}

// policyOf is an associated policy as the fake returns it, for ConsistOf.
func policyOf(name string, namespaces ...string) any {
	scope := awsfake.AccessScope{Type: awsfake.ScopeCluster}
	if len(namespaces) > 0 {
		scope = awsfake.AccessScope{Type: awsfake.ScopeNamespace, Namespaces: namespaces}
	}
	return And(HaveField("PolicyARN", awsfake.PolicyARN(name)), HaveField("Scope", scope))
}

// Each translation rule, end to end: what EKS ends up holding for the node
// forms, the type given where the form is ambiguous, and access policies
// by name and by ARN, on namespaces and on the cluster.
func TestAccessEntryTranslationRules(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperator(t)
	seedPrincipals(t, fake, windowsRole, fargateRole, hybridRole, bobUser)
	create(t,
		mapping("windows", withARN(windowsRole), withUsername("system:node:{{EC2PrivateDNSName}}"),
			withGroups("system:bootstrappers", "system:nodes", "eks:kube-proxy-windows")),
		mapping("fargate", withARN(fargateRole), withUsername("system:node:{{SessionName}}"),
			withGroups("system:bootstrappers", "system:nodes", "system:node-proxier")),
		mapping("hybrid", withARN(hybridRole), withUsername("system:node:{{SessionName}}"),
			withGroups("system:bootstrappers", "system:nodes"), withAccessEntryType(iamv1alpha1.AccessEntryHybridLinux)),
		mapping("bob", withARN(bobUser), withUsername("bob"), withGroups("readers"),
			withAccessPolicy("AmazonEKSViewPolicy", "dev", "prod"),
			withAccessPolicy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSSecretReaderPolicy")),
	)
	g.Eventually(func(g Gomega) {
		entries := entriesOf(g, fake)
		for principal, typ := range map[string]string{windowsRole: "EC2_WINDOWS", fargateRole: "FARGATE_LINUX", hybridRole: "HYBRID_LINUX"} {
			e, ok := entries[principal]
			g.Expect(ok).To(BeTrue(), "no entry of %s", principal)
			g.Expect(e.Type).To(Equal(typ), principal)
			// EKS gives node entries their groups and username itself.
			g.Expect(e.KubernetesGroups).To(BeEmpty(), principal)
			g.Expect(e.Policies).To(BeEmpty(), principal)
		}
		bob, ok := entries[bobUser]
		g.Expect(ok).To(BeTrue(), "no entry of %s", bobUser)
		g.Expect(bob.Type).To(Equal(awsfake.TypeStandard))
		g.Expect(bob.Username).To(Equal("bob"))
		g.Expect(bob.KubernetesGroups).To(ConsistOf("readers"))
		g.Expect(bob.Policies).To(ConsistOf(policyOf("AmazonEKSViewPolicy", "dev", "prod"), policyOf("AmazonEKSSecretReaderPolicy")))
		for _, e := range entries {
			g.Expect(e.Tags).To(HaveKey(accessentry.MappingTag))
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		s := getMapping(g, "bob").Status.AccessEntry
		g.Expect(s).NotTo(BeNil())
		g.Expect(s.PrincipalARN).To(Equal(bobUser))
		g.Expect(s.Policies).To(HaveLen(2))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// A policy less and a namespace more: the new scope is in place before
	// the old policy goes.
	// Retried: the operator writes bob's status and finalizer meanwhile.
	g.Eventually(func(g Gomega) {
		bob := getMapping(g, "bob")
		bob.Spec.AccessPolicies = []iamv1alpha1.AccessPolicy{{Policy: "AmazonEKSViewPolicy", Namespaces: []iamv1alpha1.AccessPolicyNamespace{"dev", "prod", "qa"}}}
		g.Expect(k.Update(context.Background(), bob)).To(Succeed())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)[bobUser].Policies).To(ConsistOf(policyOf("AmazonEKSViewPolicy", "dev", "prod", "qa")))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// An entry someone else made for a mapped principal is adopted (tagged)
// when it is the translation, and nothing else about it changes; an entry
// changed out of band (groups, a policy taken away) is restored by the
// next full resync, which describes every entry again.
func TestAccessEntryAdoptionAndRestore(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperator(t)
	seeded, err := fake.SeedEntry(eksCluster, awsfake.AccessEntry{PrincipalARN: aliceUser, Username: "alice", KubernetesGroups: []string{"dev-team"}})
	g.Expect(err).NotTo(HaveOccurred())
	since := time.Now()
	create(t,
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
		mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters", "ops")),
	)
	g.Eventually(func(g Gomega) {
		alice := entriesOf(g, fake)[aliceUser]
		g.Expect(alice.Tags).To(HaveKeyWithValue(accessentry.MappingTag, "alice"))
		// Adopted, not recreated.
		g.Expect(alice.ARN).To(Equal(seeded.ARN))
		g.Expect(alice.CreatedAt).To(Equal(seeded.CreatedAt))
		expectSynced(g, "alice", "admins")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string {
		return namesOf(normalEvents(g, "Adopted", since))
	}).WithTimeout(timeout).WithPolling(interval).Should(ConsistOf("alice"))

	changed := func(g Gomega) float64 {
		return metricValue(g, "aws_auth_guardian_access_entry_drift_restorations_total", map[string]string{"cause": "changed"})
	}
	before := changed(g)
	_, err = fake.ModifyEntry(eksCluster, aliceUser, func(e *awsfake.AccessEntry) { e.KubernetesGroups = []string{"intruders"} })
	g.Expect(err).NotTo(HaveOccurred())
	_, err = fake.ModifyEntry(eksCluster, adminsRole, func(e *awsfake.AccessEntry) { e.Policies = nil })
	g.Expect(err).NotTo(HaveOccurred())
	// A full resync is ten resyncs here.
	g.Eventually(func(g Gomega) {
		entries := entriesOf(g, fake)
		g.Expect(entries[aliceUser].KubernetesGroups).To(ConsistOf("dev-team"))
		g.Expect(entries[adminsRole].Policies).To(ConsistOf(policyOf("AmazonEKSClusterAdminPolicy")))
	}).WithTimeout(3 * 10 * accessEntryResync).WithPolling(interval).Should(Succeed())
	g.Eventually(changed).WithTimeout(timeout).WithPolling(interval).Should(Equal(before + 2))

	// alice's mapping deleted: the entry it adopted is given back, its
	// tags removed, not deleted; the mapping goes.
	since = time.Now()
	g.Expect(k.Delete(context.Background(), getMapping(g, "alice"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		alice, ok := entriesOf(g, fake)[aliceUser]
		g.Expect(ok).To(BeTrue(), "the adopted entry of alice was deleted")
		g.Expect(alice.ARN).To(Equal(seeded.ARN))
		g.Expect(alice.Tags).NotTo(HaveKey(accessentry.MappingTag))
		g.Expect(alice.Tags).NotTo(HaveKey(accessentry.AdoptedTag))
		err := k.Get(context.Background(), client.ObjectKey{Name: "alice"}, &iamv1alpha1.IAMIdentityMapping{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "alice: %v", err)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(namesOf(normalEvents(g, "Released", since))).To(ConsistOf("alice"))
	// The entry the operator made for admins is its own, and untouched.
	g.Expect(entriesOf(g, fake)[adminsRole].Tags).NotTo(HaveKey(accessentry.AdoptedTag))
}

func expectSynced(g Gomega, names ...string) {
	for _, name := range names {
		m := getMapping(g, name)
		g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)).To(BeTrue(), "%s: %v", name, m.Status.Conditions)
	}
}

// namesOf is the names of the objects events are about.
func namesOf(events []eventsv1.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Regarding.Name)
	}
	return out
}

// heldBy waits until the access entry reconciler holds steps for reason,
// and returns them.
func heldBy(g Gomega, r interface {
	LastSync() (accessentry.Sync, bool)
}, reason string) []accessentry.Held {
	var held []accessentry.Held
	g.Eventually(func(g Gomega) {
		sync, ok := r.LastSync()
		g.Expect(ok).To(BeTrue())
		g.Expect(sync.Refusal).NotTo(BeNil())
		g.Expect(sync.Refusal.Reason).To(Equal(reason))
		held = sync.Held
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return held
}

// Deleting the one node mapping would leave the cluster without a node
// entry: held, and the entry stays.
func TestAccessEntryLastNodeEntryIsHeld(t *testing.T) {
	g := NewWithT(t)
	fake, r := startAccessEntryOperator(t)
	seedCreator(t, fake)
	nodes := mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes"))
	create(t, nodes, mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")))
	g.Eventually(func(g Gomega) { g.Expect(entriesOf(g, fake)).To(HaveKey(nodesRole)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	g.Expect(k.Delete(context.Background(), nodes)).To(Succeed())
	held := heldBy(g, r, accessentry.RefusedNodes)
	g.Expect(held).To(ContainElement(HaveField("Step.PrincipalARN", nodesRole)))
	g.Consistently(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveKey(nodesRole))
	}).WithTimeout(5 * accessEntryResync).WithPolling(interval).Should(Succeed())
}

// Deleting more than --max-removed-share of the operator's entries in one
// pass (here while the operator was away, so that it sees them at once) is
// held: every entry stays.
func TestAccessEntryTooManyRemovedIsHeld(t *testing.T) {
	g := NewWithT(t)
	fake := startAccessEntryCluster(t, awsfake.ModeAPIAndConfigMap)
	op, _ := runAccessEntryOperator(t, fake)
	seedCreator(t, fake)
	var users []client.Object
	for i := range 6 {
		arn := fmt.Sprintf("arn:aws:iam::%s:user/u%d", awsfake.DefaultAccountID, i)
		seedPrincipals(t, fake, arn)
		users = append(users, mapping(fmt.Sprintf("u%d", i), withARN(arn), withUsername(fmt.Sprintf("u%d", i)), withGroups("dev-team"),
			func(m *iamv1alpha1.IAMIdentityMapping) { m.Labels = map[string]string{"batch": fmt.Sprint(i < 4)} }))
	}
	create(t, users...)
	g.Eventually(func(g Gomega) { g.Expect(entriesOf(g, fake)).To(HaveLen(7)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// Stopped, 4 of 6 deleted, started again.
	op.stop()
	g.Expect(k.DeleteAllOf(context.Background(), &iamv1alpha1.IAMIdentityMapping{}, client.MatchingLabels{"batch": "true"})).To(Succeed())
	_, r := runAccessEntryOperator(t, fake)
	held := heldBy(g, r, accessentry.RefusedTooManyRemoved)
	g.Expect(held).To(HaveLen(4))
	g.Consistently(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveLen(7))
	}).WithTimeout(5 * accessEntryResync).WithPolling(interval).Should(Succeed())
}

// While the CRD is being deleted (every mapping with it), the access
// entries are held as they are, as aws-auth is: a CRD that goes is no
// reason to take everyone's access.
func TestAccessEntriesHeldWhileTheCRDIsUnusable(t *testing.T) {
	g := NewWithT(t)
	fake, r := startAccessEntryOperator(t)
	seedCreator(t, fake)
	create(t,
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")))
	g.Eventually(func(g Gomega) { g.Expect(entriesOf(g, fake)).To(HaveLen(3)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	before := entriesOf(g, fake)

	t.Cleanup(func() { reinstallCRD(t) })
	deleteCRD(g)
	heldBy(g, r, awsauth.RefusedCRDUnusable)
	g.Consistently(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(Equal(before))
	}).WithTimeout(5 * accessEntryResync).WithPolling(interval).Should(Succeed())
}

// EKS refusing one entry (here: the cluster is at its limit of entries)
// holds back only that mapping, which says why, once; the others are made,
// and the refused one is made once there is room.
func TestAccessEntryRefusedByEKSHoldsBackOnlyItsMapping(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperatorIn(t, awsfake.ModeAPIAndConfigMap, awsfake.WithMaxAccessEntries(2))
	// The oldest mapping is planned first: alice, then admins; nodes is
	// the one over the limit.
	create(t, mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")))
	create(t, mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters")))
	g.Eventually(func(g Gomega) { g.Expect(entriesOf(g, fake)).To(HaveLen(2)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	since := time.Now()
	create(t, mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")))
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMapping(g, "nodes").Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonRefusedByEKS))
		g.Expect(c.Message).To(ContainSubstring("limit"))
		expectSynced(g, "alice", "admins")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(func(g Gomega) []string {
		return namesOf(warningEvents(g, iamv1alpha1.ReasonRefusedByEKS, since))
	}).WithTimeout(timeout).WithPolling(interval).Should(ConsistOf("nodes"))

	// Not asked again at every resync, nor at a full one: the refusal is
	// remembered, and told once.
	fake.ResetCalls()
	g.Consistently(func(g Gomega) {
		g.Expect(fake.Calls().Total("CreateAccessEntry")).To(BeZero())
		g.Expect(namesOf(warningEvents(g, iamv1alpha1.ReasonRefusedByEKS, since))).To(ConsistOf("nodes"))
	}).WithTimeout(15 * accessEntryResync).WithPolling(interval).Should(Succeed())

	// Room made: alice goes, and nodes gets its entry.
	g.Expect(k.Delete(context.Background(), getMapping(g, "alice"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveKey(nodesRole))
		expectSynced(g, "nodes")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// With 30% of calls throttled and 5% failing with 5xx, every entry gets
// there, and the entries that are not ours are never touched.
func TestAccessEntriesThroughThrottlingAndServerErrors(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperatorIn(t, awsfake.ModeAPIAndConfigMap, awsfake.WithSeed(7))
	creator := seedCreator(t, fake)
	stranger := seedStranger(t, fake)
	fake.SetFault(awsfake.AllOperations, awsfake.Fault{ThrottleRate: 0.3, ServerErrorRate: 0.05})
	create(t,
		mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters", "ops")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
	)
	g.Eventually(func(g Gomega) {
		expectTranslated(g, fake)
		expectSynced(g, "admins", "nodes", "alice")
	}).WithTimeout(2 * timeout).WithPolling(interval).Should(Succeed())
	calls := fake.Calls()
	g.Expect(calls.Total("CreateAccessEntry")).To(BeNumerically(">=", 3))
	entries := entriesOf(g, fake)
	g.Expect(entries[creatorRole]).To(Equal(creator))
	g.Expect(entries[strangerRole]).To(Equal(stranger))
	t.Logf("calls under faults: %+v", calls)
}

// seedStranger gives the cluster an entry of someone else, for no mapping.
func seedStranger(t *testing.T, fake *awsfake.Server) awsfake.AccessEntry {
	t.Helper()
	seedPrincipals(t, fake, strangerRole)
	e, err := fake.SeedEntry(eksCluster, awsfake.AccessEntry{PrincipalARN: strangerRole, Username: "stranger", KubernetesGroups: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The operator stopped in the middle of a pass (its creates slowed down,
// some made and some not) and started again: the end state is exact, with
// no entry twice, and no one else's entry touched.
func TestAccessEntriesAfterTheOperatorStopsMidSync(t *testing.T) {
	g := NewWithT(t)
	fake := startAccessEntryCluster(t, awsfake.ModeAPIAndConfigMap)
	op, _ := runAccessEntryOperator(t, fake)
	creator := seedCreator(t, fake)
	stranger := seedStranger(t, fake)
	fake.SetFault("CreateAccessEntry", awsfake.Fault{Latency: 150 * time.Millisecond})
	var users []client.Object
	for i := range 8 {
		arn := fmt.Sprintf("arn:aws:iam::%s:user/u%d", awsfake.DefaultAccountID, i)
		seedPrincipals(t, fake, arn)
		users = append(users, mapping(fmt.Sprintf("u%d", i), withARN(arn), withUsername(fmt.Sprintf("u%d", i)), withGroups("dev-team")))
	}
	create(t, users...)
	// Stopped once some of the eight are made, not all.
	g.Eventually(func(g Gomega) { g.Expect(len(entriesOf(g, fake))).To(BeNumerically(">=", 2+2)) }).
		WithTimeout(timeout).WithPolling(10 * time.Millisecond).Should(Succeed())
	op.stop()
	made := len(entriesOf(g, fake)) - 2
	g.Expect(made).To(BeNumerically("<", 8), "the pass ended before the stop")
	t.Logf("stopped with %d of 8 entries made", made)

	fake.ClearFaults()
	runAccessEntryOperator(t, fake)
	g.Eventually(func(g Gomega) {
		entries := entriesOf(g, fake)
		g.Expect(entries).To(HaveLen(8 + 2))
		for i := range 8 {
			e := entries[fmt.Sprintf("arn:aws:iam::%s:user/u%d", awsfake.DefaultAccountID, i)]
			g.Expect(e.Tags).To(HaveKeyWithValue(accessentry.MappingTag, fmt.Sprintf("u%d", i)))
			g.Expect(e.Username).To(Equal(fmt.Sprintf("u%d", i)))
		}
		g.Expect(entries[creatorRole]).To(Equal(creator))
		g.Expect(entries[strangerRole]).To(Equal(stranger))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
