package integration

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

const apiModeBlockersMetric = "aws_auth_guardian_api_mode_blockers"

// apiModeEvents are the APIModeBlockers events since, each as its message;
// they are on aws-auth.
func apiModeEvents(g Gomega, since time.Time) []string {
	var notes []string
	for _, e := range normalEvents(g, controllers.ReasonAPIModeBlockers, since) {
		g.Expect(e.Regarding.Kind).To(Equal("ConfigMap"))
		g.Expect(e.Regarding.Namespace + "/" + e.Regarding.Name).To(Equal("kube-system/aws-auth"))
		notes = append(notes, e.Note)
	}
	return notes
}

// The running operator counts what blocks API mode as manager migrate
// does, and says so on aws-auth when the count changes: a mapping without
// its entry blocks until the operator has made it; a mapping no access
// entry can express blocks for as long as it exists; and the cluster admin
// entry gone blocks too.
func TestAPIModeBlockersFollowTheCluster(t *testing.T) {
	g := NewWithT(t)
	since := time.Now()
	fake, _ := startAccessEntryOperator(t)
	seedCreator(t, fake)
	blockers := func(g Gomega) float64 { return metricValue(g, apiModeBlockersMetric, nil) }

	// alice has no entry at first: the operator's first pass counts her,
	// then makes her entry, and the count goes to 0.
	create(t, mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")))
	g.Eventually(func(g Gomega) { g.Expect(entriesOf(g, fake)).To(HaveKey(aliceUser)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Eventually(blockers).WithTimeout(withinResyncs).WithPolling(interval).Should(BeZero())
	g.Eventually(func(g Gomega) []string { return apiModeEvents(g, since) }).WithTimeout(timeout).WithPolling(interval).Should(ContainElement(
		HavePrefix("Nothing blocks API mode now")))

	// An account mapping cannot become an access entry: it blocks, and is
	// named.
	since = time.Now()
	create(t, mapping("partners", withAccount("444455556666")))
	g.Eventually(blockers).WithTimeout(withinResyncs).WithPolling(interval).Should(Equal(1.0))
	g.Eventually(func(g Gomega) []string { return apiModeEvents(g, since) }).WithTimeout(timeout).WithPolling(interval).Should(ConsistOf(
		"API mode is blocked by 1: 1 mapping would lose or change access (partners). manager migrate --eks-cluster-name NAME says why for each"))

	// The creator's entry, the only cluster admin, deleted out of band.
	since = time.Now()
	g.Expect(fake.DeleteEntry(eksCluster, creatorRole)).To(Succeed())
	g.Eventually(blockers).WithTimeout(withinResyncs).WithPolling(interval).Should(Equal(2.0))
	g.Eventually(func(g Gomega) []string { return apiModeEvents(g, since) }).WithTimeout(timeout).WithPolling(interval).Should(ConsistOf(
		ContainSubstring("no access entry has AmazonEKSClusterAdminPolicy on the whole cluster")))

	// Once per change, not per resync.
	g.Consistently(func(g Gomega) []string { return apiModeEvents(g, since) }).WithTimeout(10 * accessEntryResync).WithPolling(interval).Should(HaveLen(1))
}

// In CONFIG_MAP mode the cluster holds no access entries: every mapping in
// aws-auth would lose its access in API mode, and no one would be cluster
// admin.
func TestAPIModeBlockersInConfigMapMode(t *testing.T) {
	g := NewWithT(t)
	since := time.Now()
	startAccessEntryOperatorIn(t, awsfake.ModeConfigMap)
	create(t,
		mapping("alice", withARN(aliceUser), withUsername("alice")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
	)
	g.Eventually(func(g Gomega) float64 { return metricValue(g, apiModeBlockersMetric, nil) }).WithTimeout(withinResyncs).WithPolling(interval).Should(Equal(3.0))
	g.Eventually(func(g Gomega) []eventsv1.Event { return normalEvents(g, controllers.ReasonAPIModeBlockers, since) }).
		WithTimeout(timeout).WithPolling(interval).ShouldNot(BeEmpty())
}
