package integration

import (
	"context"
	"fmt"
	"math"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

// With the access entry target on and every EKS and IAM call hanging, the
// access entry reconciler is blocked inside a call, and aws-auth still
// heals and follows the mappings: the two controllers share no worker and
// no lock. A hang, not a latency, so that an aws-auth reconcile that waited
// for EKS would never finish and the bounds below (the suite's, far above
// a heal) would fail whatever the machine's speed; nothing here times the
// heal, which the bench measures (make bench).
func TestAWSAuthHealsWhileEKSHangs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	fake, _ := startAccessEntryOperator(t)
	create(t,
		mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters", "ops")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
	)
	want := []awsauth.Entry{
		entry(awsauth.MapRoles, adminsAsMapped, "admin", "system:masters", "ops"),
		entry(awsauth.MapRoles, nodesRole, "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		entry(awsauth.MapUsers, aliceUser, "alice", "dev-team"),
	}
	// Both targets hold the mappings first: the access entry reconciler has
	// done real work, and has state, before EKS stops answering.
	g.Eventually(func(g Gomega) {
		expectTranslated(g, fake)
		g.Expect(liveEntries(g)).To(Equal(want))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	fake.SetFault(awsfake.AllOperations, awsfake.Fault{Hang: true})
	// The next pass (a resync away) blocks in its first call. Calls counts
	// a call only once it ends, so InFlight is what shows it blocked.
	g.Eventually(fake.InFlight).WithTimeout(timeout).WithPolling(interval).ShouldNot(BeEmpty())
	hung := fake.Calls()

	// The worst case of a delete: the finalizer removed first, so aws-auth
	// is gone at once and only the operator brings it back.
	gone := getAWSAuth(g)
	gone.Finalizers = nil
	g.Expect(k.Update(ctx, gone)).To(Succeed())
	g.Expect(k.Delete(ctx, gone)).To(Succeed())
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).NotTo(Equal(gone.UID))
		g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
		g.Expect(liveEntries(g)).To(Equal(want))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	expectStillHung(g, fake, hung)

	// A change of a mapping reaches aws-auth too.
	alice := getMapping(g, "alice")
	alice.Spec.Groups = []iamv1alpha1.IdentityName{"dev-team", "oncall"}
	g.Expect(k.Update(ctx, alice)).To(Succeed())
	want[2] = entry(awsauth.MapUsers, aliceUser, "alice", "dev-team", "oncall")
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(want))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	expectStillHung(g, fake, hung)
}

// expectStillHung checks that EKS was hanging all along: a call is still
// held, and none has ended since the fault was set.
func expectStillHung(g Gomega, fake *awsfake.Server, hung awsfake.CallCounts) {
	g.Expect(fake.InFlight()).NotTo(BeEmpty(), "no EKS call is held any more: the test no longer shows anything")
	g.Expect(fake.Calls()).To(Equal(hung), "an EKS call ended while every call should hang")
}

// At rest, with the target on and nothing changing, the access entry
// reconciler only reads: per pass ceil(entries/100) ListAccessEntries and
// the describes (DescribeAccessEntry and ListAssociatedAccessPolicies) of
// its share of the entries, ceil(entries x resync / full resync), so that
// every entry is described again within a full resync (that is how an
// entry changed in place is found); at each full resync DescribeCluster.
// No write, and no IAM call (role ARNs are cached). 150 entries, so that
// the list takes two pages.
func TestAccessEntryCallsAtRest(t *testing.T) {
	g := NewWithT(t)
	fake, r := startAccessEntryOperator(t)
	const n = 150
	var arns []string
	var objs []client.Object
	for i := range n {
		name := fmt.Sprintf("rest-%03d", i)
		arn := "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/" + name
		arns = append(arns, arn)
		objs = append(objs, role(name, arn, "viewers"))
	}
	g.Expect(fake.SeedPrincipals(arns...)).To(Succeed())
	create(t, objs...)
	// Converged: every entry made, and a pass has since planned nothing,
	// so that it has described them all.
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveLen(n))
		sync, ok := r.LastSync()
		g.Expect(ok).To(BeTrue())
		g.Expect(sync.Steps).To(BeEmpty())
		g.Expect(sync.Held).To(BeEmpty())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	from, fromPasses := callsBetweenPasses(g, fake)
	var calls awsfake.CallCounts
	var passes, full int
	// At least a dozen resyncs, and a full one among them.
	g.Eventually(func(g Gomega) {
		c, p := callsBetweenPasses(g, fake)
		calls, passes = c.Since(from), int(p-fromPasses)
		full = calls.Total("DescribeCluster")
		g.Expect(passes).To(BeNumerically(">=", 12))
		g.Expect(full).To(BeNumerically(">=", 1))
	}).WithTimeout(timeout).WithPolling(accessEntryResync).Should(Succeed())

	t.Logf("%d passes, %d of them full: %v", passes, full, calls)
	reads := []string{"ListAccessEntries", "DescribeCluster", "DescribeAccessEntry", "ListAssociatedAccessPolicies"}
	for _, op := range calls.Operations() {
		g.Expect(reads).To(ContainElement(op), "%s called at rest: %v", op, calls)
		g.Expect(calls[op]).To(HaveKeyWithValue(awsfake.OutcomeOK, calls.Total(op)), "%s: %v", op, calls[op])
	}
	for _, write := range []string{"CreateAccessEntry", "UpdateAccessEntry", "DeleteAccessEntry", "AssociateAccessPolicy", "DisassociateAccessPolicy", "TagResource", "UntagResource"} {
		g.Expect(calls.Total(write)).To(BeZero(), write)
	}
	g.Expect(calls.Total("GetRole")).To(BeZero())
	pages := (n + 99) / 100
	g.Expect(calls.Total("ListAccessEntries")).To(Equal(pages*passes), "%d passes of %d pages", passes, pages)
	share := int(math.Ceil(n * float64(accessEntryResync) / float64(10*accessEntryResync)))
	g.Expect(calls.Total("DescribeAccessEntry")).To(Equal(share*passes), "%d passes describing %d entries each", passes, share)
	g.Expect(calls.Total("ListAssociatedAccessPolicies")).To(Equal(share*passes), "%d passes describing %d entries each", passes, share)
	// No pass does the whole check at once.
	g.Expect(share).To(BeNumerically("<", n))
}

// callsBetweenPasses reads the fake's counters, and how many passes the
// access entry reconciler has run, at a moment when no pass runs: its
// worker idle before and after the read, and no pass ended in between.
// A pass caught in the middle would show half its calls.
func callsBetweenPasses(g Gomega, fake *awsfake.Server) (awsfake.CallCounts, float64) {
	var calls awsfake.CallCounts
	var passes float64
	g.Eventually(func() bool {
		if accessEntryMetric(g, "controller_runtime_active_workers") != 0 {
			return false
		}
		before := accessEntryMetric(g, "controller_runtime_reconcile_total")
		calls = fake.Calls()
		if accessEntryMetric(g, "controller_runtime_active_workers") != 0 {
			return false
		}
		passes = accessEntryMetric(g, "controller_runtime_reconcile_total")
		return passes == before
	}).WithTimeout(timeout).WithPolling(interval).Should(BeTrue(), "the access entry reconciler never rested between passes")
	return calls, passes
}

// accessEntryMetric sums a controller-runtime series of the access entry
// controller over its other labels (reconcile_total has one per result).
func accessEntryMetric(g Gomega, name string) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, map[string]string{"controller": "eks-access-entries"}) {
				total += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return total
}
