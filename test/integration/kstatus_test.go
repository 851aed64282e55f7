package integration

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// These tests hold the status to the kstatus conventions with the library
// that kubectl wait, Flux and cli-utils appliers use, on the object as the
// API server returns it: not a re-implementation of the rules.

// kstatusOf reads a mapping unstructured, as a generic client sees it, and
// computes its kstatus.
func kstatusOf(g Gomega, name string) *status.Result {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(iamv1alpha1.GroupVersion.WithKind("IAMIdentityMapping"))
	g.Expect(k.Get(context.Background(), client.ObjectKey{Name: name}, u)).To(Succeed())
	res, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res
}

func kstatusExpectCurrent(g Gomega, name string) {
	res := kstatusOf(g, name)
	g.Expect(res.Status).To(Equal(status.CurrentStatus), "%s: %s", name, res.Message)
}

func TestKstatusCurrentOnceReady(t *testing.T) {
	startOperator(t, managed.Immutable)
	g := NewWithT(t)

	create(t, role("admins", "arn:aws:iam::111122223333:role/admins", "system:masters"))
	// Both at once: kstatus alone also says Current for a mapping the
	// operator has not written a status on yet (no observedGeneration, no
	// conditions), which `kubectl wait --for=condition=Ready` does not.
	g.Eventually(func(g Gomega) {
		expectReady(g, "admins")
		kstatusExpectCurrent(g, "admins")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestKstatusFailedOnConflict(t *testing.T) {
	startOperator(t, managed.Immutable)
	g := NewWithT(t)

	older := role("zeta", "arn:aws:iam::111122223333:role/Shared", "zeta")
	create(t, older)
	g.Eventually(func(g Gomega) {
		expectReady(g, "zeta")
		kstatusExpectCurrent(g, "zeta")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	// creationTimestamp has one-second resolution: let a second boundary
	// pass so that age, not the name, makes zeta the winner.
	g.Eventually(func() int64 { return time.Now().Unix() }).WithTimeout(3 * time.Second).WithPolling(interval).
		Should(BeNumerically(">", older.CreationTimestamp.Unix()))

	create(t, role("alpha", "arn:aws:iam::111122223333:role/shared", "alpha"))
	g.Eventually(func(g Gomega) {
		res := kstatusOf(g, "alpha")
		g.Expect(res.Status).To(Equal(status.FailedStatus), res.Message)
		g.Expect(res.Message).To(ContainSubstring("zeta"))
		g.Expect(res.Conditions).To(ContainElement(And(
			HaveField("Type", status.ConditionStalled),
			HaveField("Reason", iamv1alpha1.ReasonConflict),
		)))
		c := readyCondition(g, "alpha")
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonConflict))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	// The winner is unaffected.
	kstatusExpectCurrent(g, "zeta")
}

func TestKstatusInProgressUntilGenerationObserved(t *testing.T) {
	op := startOperator(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	m := role("admins", "arn:aws:iam::111122223333:role/admins", "system:masters")
	create(t, m)
	g.Eventually(func(g Gomega) {
		expectReady(g, "admins")
		kstatusExpectCurrent(g, "admins")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// With the operator down, nothing can observe the new spec: what
	// `kubectl wait --for=jsonpath=...` or a kstatus poller sees right after
	// an apply, held still.
	op.stop()
	g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
	base := client.MergeFrom(m.DeepCopy())
	m.Spec.Groups = []iamv1alpha1.IdentityName{"system:masters", "platform:admins"}
	g.Expect(k.Patch(ctx, m, base)).To(Succeed())
	g.Expect(m.Generation).To(Equal(m.Status.ObservedGeneration + 1))
	// Ready is still True from the old spec: only observedGeneration tells
	// that it is not about this one.
	g.Expect(readyConditionOf(m).Status).To(Equal(metav1.ConditionTrue))

	res := kstatusOf(g, "admins")
	g.Expect(res.Status).To(Equal(status.InProgressStatus), res.Message)
	g.Expect(res.Conditions).To(ContainElement(And(
		HaveField("Type", status.ConditionReconciling),
		HaveField("Reason", "LatestGenerationNotObserved"),
	)))

	runOperator(t, managed.Immutable)
	g.Eventually(func(g Gomega) {
		kstatusExpectCurrent(g, "admins")
		expectReady(g, "admins")
		g.Expect(liveEntries(g)).To(Equal([]awsauth.Entry{
			entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "system:masters", "platform:admins"),
		}))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
