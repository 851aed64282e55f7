package integration

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

const (
	eksCluster = "dev"
	// accessEntryResync is short so that a resync is quick to see; the
	// bounds below are a few resyncs, with room for a shared machine.
	accessEntryResync = 200 * time.Millisecond
	withinResyncs     = 5 * time.Second
)

// The principals of the access entry tests, as IAM holds them. The admins'
// mapping names the role without its path, as aws-auth must, so the
// operator has to ask IAM for the ARN EKS matches.
const (
	adminsRole     = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/teams/admins"
	adminsAsMapped = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/admins"
	nodesRole      = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/nodes"
	aliceUser      = "arn:aws:iam::" + awsfake.DefaultAccountID + ":user/alice"
	creatorRole    = "arn:aws:iam::" + awsfake.DefaultAccountID + ":role/creator"
)

// startAccessEntryOperator starts a fake EKS and IAM with cluster "dev",
// and the operator with its access entry controller pointed at the fake,
// as --eks-cluster-name=dev would run it.
func startAccessEntryOperator(t *testing.T) (*awsfake.Server, *controllers.AccessEntryReconciler) {
	t.Helper()
	return startAccessEntryOperatorIn(t, awsfake.ModeAPIAndConfigMap)
}

// startAccessEntryOperatorIn is startAccessEntryOperator with the cluster
// in authentication mode mode, and the fake made with opts.
func startAccessEntryOperatorIn(t *testing.T, mode string, opts ...awsfake.Option) (*awsfake.Server, *controllers.AccessEntryReconciler) {
	t.Helper()
	fake := startAccessEntryCluster(t, mode, opts...)
	_, r := runAccessEntryOperator(t, fake)
	return fake, r
}

// startAccessEntryCluster empties the cluster and starts the fake EKS and
// IAM, with cluster "dev" in mode, and no operator yet.
func startAccessEntryCluster(t *testing.T, mode string, opts ...awsfake.Option) *awsfake.Server {
	t.Helper()
	fake := awsfake.New(opts...)
	t.Cleanup(fake.Close)
	if _, err := fake.SeedCluster(awsfake.Cluster{Name: eksCluster, AuthenticationMode: mode}); err != nil {
		t.Fatal(err)
	}
	if err := fake.SeedPrincipals(adminsRole, nodesRole, aliceUser, creatorRole); err != nil {
		t.Fatal(err)
	}
	resetCluster(t)
	return fake
}

// runAccessEntryOperator runs the operator with a new access entry
// controller pointed at fake, as a restart of the process would.
func runAccessEntryOperator(t *testing.T, fake *awsfake.Server) (*operator, *controllers.AccessEntryReconciler) {
	t.Helper()
	eks, err := eksapi.New(context.Background(), eksapi.Options{
		ClusterName: eksCluster,
		RateLimit:   eksapi.RateLimit{QPS: 1000, Burst: 1000},
		MaxBackoff:  20 * time.Millisecond,
		Registerer:  prometheus.NewRegistry(),
		LoadOptions: fake.SDKConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.AccessEntryReconciler{EKS: eks, Resync: accessEntryResync, FullResync: 10 * accessEntryResync, MaxRemovedShare: 0.5}
	return runOperatorWith(t, cfg, managed.Immutable, r), r
}

// seedCreator gives the cluster the entry EKS makes for its creator:
// untagged, with the cluster admin policy on the whole cluster.
func seedCreator(t *testing.T, fake *awsfake.Server) awsfake.AccessEntry {
	t.Helper()
	e, err := fake.SeedEntry(eksCluster, awsfake.AccessEntry{
		PrincipalARN: creatorRole,
		Policies: []awsfake.AssociatedPolicy{{
			PolicyARN: awsfake.PolicyARN("AmazonEKSClusterAdminPolicy"),
			Scope:     awsfake.AccessScope{Type: awsfake.ScopeCluster},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// entriesOf is the fake's entries by principal ARN.
func entriesOf(g Gomega, fake *awsfake.Server) map[string]awsfake.AccessEntry {
	entries, err := fake.Snapshot(eksCluster)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]awsfake.AccessEntry{}
	for _, e := range entries {
		out[e.PrincipalARN] = e
	}
	return out
}

var clusterAdmin = []awsfake.AssociatedPolicy{{PolicyARN: awsfake.PolicyARN("AmazonEKSClusterAdminPolicy"), Scope: awsfake.AccessScope{Type: awsfake.ScopeCluster}}}

// expectTranslated checks that the fake holds the entries of the three
// mappings of TestAccessEntriesFollowMappings, tagged as ours.
func expectTranslated(g Gomega, fake *awsfake.Server) {
	entries := entriesOf(g, fake)
	admins, ok := entries[adminsRole]
	g.Expect(ok).To(BeTrue(), "no entry of %s", adminsRole)
	g.Expect(admins.Tags).To(HaveKeyWithValue(accessentry.MappingTag, "admins"))
	g.Expect(admins.Type).To(Equal(awsfake.TypeStandard))
	g.Expect(admins.Username).To(Equal("admin"))
	g.Expect(admins.KubernetesGroups).To(ConsistOf("ops"))
	g.Expect(admins.Policies).To(HaveLen(1))
	g.Expect(admins.Policies[0].PolicyARN).To(Equal(clusterAdmin[0].PolicyARN))
	g.Expect(admins.Policies[0].Scope.Type).To(Equal(awsfake.ScopeCluster))

	nodes, ok := entries[nodesRole]
	g.Expect(ok).To(BeTrue(), "no entry of %s", nodesRole)
	g.Expect(nodes.Tags).To(HaveKeyWithValue(accessentry.MappingTag, "nodes"))
	g.Expect(nodes.Type).To(Equal("EC2_LINUX"))

	alice, ok := entries[aliceUser]
	g.Expect(ok).To(BeTrue(), "no entry of %s", aliceUser)
	g.Expect(alice.Tags).To(HaveKeyWithValue(accessentry.MappingTag, "alice"))
	g.Expect(alice.Username).To(Equal("alice"))
	g.Expect(alice.KubernetesGroups).To(ConsistOf("dev-team"))
	g.Expect(alice.Policies).To(BeEmpty())
}

// The mappings' access entries appear, tagged, with the cluster admin
// policy for system:masters; one deleted out of band is back within a few
// resyncs; the creator's untagged entry is never touched.
func TestAccessEntriesFollowMappings(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperator(t)
	creator := seedCreator(t, fake)
	create(t,
		mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters", "ops")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
	)
	g.Eventually(func(g Gomega) { expectTranslated(g, fake) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"admins", "nodes", "alice"} {
			m := getMapping(g, name)
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)).To(BeTrue(), "%s: %v", name, m.Status.Conditions)
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, iamv1alpha1.ConditionReady)).To(BeTrue(), "%s: %v", name, m.Status.Conditions)
			g.Expect(m.Status.AccessEntry).NotTo(BeNil())
		}
		admins := getMapping(g, "admins").Status.AccessEntry
		// The ARN EKS matches, path included, not the one aws-auth holds.
		g.Expect(admins.PrincipalARN).To(Equal(adminsRole))
		g.Expect(admins.Policies).To(ConsistOf(iamv1alpha1.AccessPolicyStatus{PolicyARN: clusterAdmin[0].PolicyARN, Scope: iamv1alpha1.AccessScopeCluster}))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	missing := func(g Gomega) float64 {
		return metricValue(g, "aws_auth_guardian_access_entry_drift_restorations_total", map[string]string{"cause": "missing"})
	}
	before, since := missing(g), time.Now()
	g.Expect(fake.DeleteEntry(eksCluster, aliceUser)).To(Succeed())
	g.Eventually(func(g Gomega) { expectTranslated(g, fake) }).WithTimeout(withinResyncs).WithPolling(interval).Should(Succeed())
	// Told once, on alice's mapping, and counted as drift.
	g.Eventually(func(g Gomega) []eventsv1.Event { return normalEvents(g, "Restored", since) }).
		WithTimeout(timeout).WithPolling(interval).Should(ConsistOf(HaveField("Regarding.Name", "alice")))
	g.Expect(missing(g)).To(Equal(before + 1))
	g.Expect(metricValue(g, "aws_auth_guardian_access_entries", map[string]string{"state": "managed"})).To(BeNumerically(">=", 2))

	// Several resyncs and a full one: the creator's entry is as seeded.
	g.Consistently(func(g Gomega) {
		g.Expect(entriesOf(g, fake)[creatorRole]).To(Equal(creator))
	}).WithTimeout(15 * accessEntryResync).WithPolling(interval).Should(Succeed())
}

// Deleting the last mapping with cluster admin, when no other entry of the
// cluster has it (the creator's was removed), is held: the entry stays.
func TestAccessEntryLastClusterAdminIsHeld(t *testing.T) {
	g := NewWithT(t)
	fake, r := startAccessEntryOperator(t)
	admins := mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters"))
	// nodes stays, so that deleting alice does not empty aws-auth, which
	// aws-auth's own guard would hold.
	create(t, admins, mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")))
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveKey(adminsRole))
		g.Expect(entriesOf(g, fake)).To(HaveKey(aliceUser))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	since := time.Now()
	g.Expect(k.Delete(context.Background(), admins)).To(Succeed())
	g.Eventually(func(g Gomega) {
		sync, ok := r.LastSync()
		g.Expect(ok).To(BeTrue())
		g.Expect(sync.Refusal).NotTo(BeNil())
		g.Expect(sync.Refusal.Reason).To(Equal(accessentry.RefusedClusterAdmin))
		g.Expect(sync.Held).To(ContainElement(HaveField("Step.PrincipalARN", adminsRole)))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	// The mapping stays, saying why, as aws-auth's guards hold a deletion.
	g.Eventually(func(g Gomega) {
		ready := readyConditionOf(getMapping(g, "admins"))
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(iamv1alpha1.ReasonBlocked))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		e, ok := entriesOf(g, fake)[adminsRole]
		g.Expect(ok).To(BeTrue())
		g.Expect(e.Policies).To(HaveLen(1))
		g.Expect(getMapping(g, "admins").DeletionTimestamp).NotTo(BeNil())
		g.Expect(metricValue(g, "aws_auth_guardian_access_entry_blocked", nil)).To(Equal(1.0))
	}).WithTimeout(10 * accessEntryResync).WithPolling(interval).Should(Succeed())
	// One Warning on the mapping for all those resyncs.
	g.Expect(warningEvents(g, accessentry.RefusedClusterAdmin, since)).To(ConsistOf(HaveField("Regarding.Name", "admins")))

	// A deletion no guard holds goes through: entry first, then the mapping.
	g.Expect(k.Delete(context.Background(), getMapping(g, "alice"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).NotTo(HaveKey(aliceUser))
		err := k.Get(context.Background(), client.ObjectKey{Name: "alice"}, &iamv1alpha1.IAMIdentityMapping{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "alice: %v", err)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// The Warning names the command that lets the held plan through; run
	// as it says, the last cluster admin's entry goes, and its mapping.
	var hash string
	g.Eventually(func(g Gomega) {
		sync, ok := r.LastSync()
		g.Expect(ok).To(BeTrue())
		g.Expect(sync.Steps).To(BeEmpty())
		g.Expect(sync.RefusedHash).NotTo(BeEmpty())
		hash = sync.RefusedHash
		command := "kubectl annotate iamidentitymapping admins --overwrite " + iamv1alpha1.AllowAccessEntryPlanAnnotation + "=" + hash
		g.Expect(warningEvents(g, accessentry.RefusedClusterAdmin, since)).To(ContainElement(HaveField("Note", ContainSubstring(command))))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	held := getMapping(g, "admins")
	patch := client.MergeFrom(held.DeepCopy())
	held.Annotations = map[string]string{iamv1alpha1.AllowAccessEntryPlanAnnotation: hash}
	g.Expect(k.Patch(context.Background(), held, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).NotTo(HaveKey(adminsRole))
		err := k.Get(context.Background(), client.ObjectKey{Name: "admins"}, &iamv1alpha1.IAMIdentityMapping{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "admins: %v", err)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(metricValue(g, "aws_auth_guardian_access_entry_blocked", nil)).To(Equal(0.0))
}

// A mapping with no access entry form, or naming a role IAM does not have,
// says so in AccessEntrySynced and is Ready by aws-auth alone, which holds
// it; a conflict with an entry that is not ours holds Ready back.
func TestAccessEntryConditions(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperator(t)
	// Someone else's entry for alice, with other groups: not ours to change.
	if _, err := fake.SeedEntry(eksCluster, awsfake.AccessEntry{PrincipalARN: aliceUser, Username: "alice", KubernetesGroups: []string{"other"}}); err != nil {
		t.Fatal(err)
	}
	create(t,
		mapping("account", withAccount(awsfake.DefaultAccountID)),
		mapping("ghost", withARN("arn:aws:iam::"+awsfake.DefaultAccountID+":role/ghost"), withUsername("ghost")),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
	)
	expect := func(g Gomega, name string, reason string, ready metav1.ConditionStatus) {
		m := getMapping(g, name)
		c := meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)
		g.Expect(c).NotTo(BeNil(), "%s: %v", name, m.Status.Conditions)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse), "%s: %v", name, c)
		g.Expect(c.Reason).To(Equal(reason), "%s: %v", name, c)
		g.Expect(readyConditionOf(m)).NotTo(BeNil())
		g.Expect(readyConditionOf(m).Status).To(Equal(ready), "%s: %v", name, m.Status.Conditions)
		// aws-auth holds each of them, whatever the access entry says.
		awsAuth := meta.FindStatusCondition(m.Status.Conditions, iamv1alpha1.ConditionAWSAuthSynced)
		g.Expect(awsAuth).NotTo(BeNil(), "%s: %v", name, m.Status.Conditions)
		g.Expect(awsAuth.Status).To(Equal(metav1.ConditionTrue), "%s: %v", name, awsAuth)
		g.Expect(awsAuth.Reason).To(Equal(iamv1alpha1.ReasonApplied), "%s: %v", name, awsAuth)
	}
	g.Eventually(func(g Gomega) {
		expect(g, "account", iamv1alpha1.ReasonNotRepresentable, metav1.ConditionTrue)
		expect(g, "ghost", iamv1alpha1.ReasonPrincipalNotFound, metav1.ConditionTrue)
		expect(g, "alice", iamv1alpha1.ReasonConflict, metav1.ConditionFalse)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(entriesOf(g, fake)[aliceUser].KubernetesGroups).To(ConsistOf("other"))
}

// As the cluster's mode moves from CONFIG_MAP to API_AND_CONFIG_MAP to
// API while the operator runs, Ready follows what EKS reads: aws-auth
// alone, then aws-auth and the access entries, then the access entries
// alone, where a mapping with no access entry form grants nothing. aws-auth
// is written all along.
func TestAccessEntryAPIModeReadyByAccessEntriesAlone(t *testing.T) {
	g := NewWithT(t)
	fake, _ := startAccessEntryOperatorIn(t, awsfake.ModeConfigMap)
	create(t,
		mapping("account", withAccount(awsfake.DefaultAccountID)),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
	)
	ready := func(g Gomega, name string) *metav1.Condition {
		c := readyConditionOf(getMapping(g, name))
		g.Expect(c).NotTo(BeNil(), name)
		return c
	}
	// CONFIG_MAP: aws-auth alone; the target says nothing.
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"account", "alice", "nodes"} {
			g.Expect(ready(g, name).Status).To(Equal(metav1.ConditionTrue), name)
			g.Expect(meta.FindStatusCondition(getMapping(g, name).Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)).To(BeNil(), name)
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(entriesOf(g, fake)).To(BeEmpty())
	modeIs := func(mode string) {
		g.Expect(metricValue(g, "aws_auth_guardian_eks_authentication_mode", map[string]string{"mode": mode})).To(Equal(1.0))
	}
	modeIs("CONFIG_MAP")

	// API_AND_CONFIG_MAP: the account mapping has no entry, and aws-auth
	// still grants it, so it stays Ready.
	g.Expect(fake.SetAuthenticationMode(eksCluster, awsfake.ModeAPIAndConfigMap)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesOf(g, fake)).To(HaveKey(aliceUser))
		c := meta.FindStatusCondition(getMapping(g, "account").Status.Conditions, iamv1alpha1.ConditionAccessEntrySynced)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonNotRepresentable))
		g.Expect(ready(g, "account").Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready(g, "alice").Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	modeIs("API_AND_CONFIG_MAP")

	// API: aws-auth grants nothing; the account mapping says so.
	g.Expect(fake.SetAuthenticationMode(eksCluster, awsfake.ModeAPI)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := ready(g, "account")
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonNotRepresentable))
		g.Expect(c.Message).To(ContainSubstring("grants nothing"))
		g.Expect(ready(g, "alice").Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready(g, "nodes").Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	modeIs("API")
	// aws-auth is still written, the account mapping in it.
	g.Expect(liveEntries(g)).To(HaveLen(3))
}

func getMapping(g Gomega, name string) *iamv1alpha1.IAMIdentityMapping {
	m := &iamv1alpha1.IAMIdentityMapping{}
	g.Expect(k.Get(context.Background(), client.ObjectKey{Name: name}, m)).To(Succeed())
	return m
}
