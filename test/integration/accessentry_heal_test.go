package integration

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

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
