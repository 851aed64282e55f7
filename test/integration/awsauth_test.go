package integration

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

const (
	nodeRoleARN = "arn:aws:iam::111122223333:role/eks-nodes"
	adminARN    = "arn:aws:iam::111122223333:role/platform/admins"
	userARN     = "arn:aws:iam::111122223333:user/ops/jane"
)

// startWithMappings starts the operator on the three kinds of entry and
// waits until aws-auth holds them.
func startWithMappings(t *testing.T, mode managed.Mode) *operator {
	t.Helper()
	op := startOperator(t, mode)
	create(t, baseMappings()...)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
		expectReady(g, "nodes", "admins", "jane", "partner")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return op
}

// baseMappings are the three kinds of entry most tests start from; a fresh
// set each call, since create fills them in.
func baseMappings() []client.Object {
	return []client.Object{
		mapping("nodes", withARN(nodeRoleARN), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
		role("admins", adminARN, "system:masters"),
		mapping("jane", withARN(userARN), withUsername("jane")),
		mapping("partner", withAccount("444455556666")),
	}
}

// baseEntries is what baseMappings render, written out by hand: the
// admins role loses its path, the user keeps it.
var baseEntries = []awsauth.Entry{
	entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "system:masters"),
	entry(awsauth.MapRoles, nodeRoleARN, "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
	entry(awsauth.MapUsers, userARN, "jane"),
	entry(awsauth.MapAccounts, "444455556666", ""),
}

func TestRendersMappingsIntoImmutableAWSAuth(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	cm := getAWSAuth(g)
	g.Expect(cm.Immutable).To(Equal(ptr.To(true)))
	g.Expect(cm.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
	g.Expect(cm.Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
	g.Expect(cm.Annotations).To(HaveKeyWithValue(iamv1alpha1.DataHashAnnotation, awsauth.Hash(cm.Data)))
	g.Expect(cm.OwnerReferences).To(BeEmpty())

	admins := &iamv1alpha1.IAMIdentityMapping{}
	g.Expect(k.Get(ctx, client.ObjectKey{Name: "admins"}, admins)).To(Succeed())
	g.Expect(admins.Status.CanonicalARN).To(Equal("arn:aws:iam::111122223333:role/admins"))
	g.Expect(admins.Status.Section).To(Equal(iamv1alpha1.Section("mapRoles")))

	// A change of spec replaces the immutable object.
	admins.Spec.Groups = []iamv1alpha1.IdentityName{"platform:admins"}
	g.Expect(k.Update(ctx, admins)).To(Succeed())
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).NotTo(Equal(cm.UID))
		g.Expect(liveEntries(g)).To(ContainElement(entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "platform:admins")))
		expectReady(g, "admins")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// A deleted mapping leaves aws-auth.
	g.Expect(k.Delete(ctx, mapping("jane"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, e := range liveEntries(g) {
			g.Expect(e.Identity).NotTo(Equal(userARN))
		}
		g.Expect(getAWSAuth(g).Data).NotTo(HaveKey("mapUsers"))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestMutableModeUpdatesInPlace(t *testing.T) {
	startWithMappings(t, managed.Mutable)
	g := NewWithT(t)
	ctx := context.Background()
	before := getAWSAuth(g)
	g.Expect(ptr.Deref(before.Immutable, false)).To(BeFalse())

	create(t, role("viewers", "arn:aws:iam::111122223333:role/viewers", "viewers"))
	viewers := entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/viewers", "viewers:{{SessionName}}", "viewers")
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(ContainElement(viewers))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(getAWSAuth(g).UID).To(Equal(before.UID), "mutable mode must update in place")

	// Data edited in place by someone else is put back.
	edited := getAWSAuth(g)
	edited.Data["mapRoles"] = "- rolearn: arn:aws:iam::999999999999:role/intruder\n  username: x\n  groups: [system:masters]\n"
	g.Expect(k.Update(ctx, edited)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(ConsistOf(append([]awsauth.Entry{viewers}, baseEntries...)))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestHealsDeletedAWSAuth(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	// A plain delete only marks it terminating: the finalizer keeps it
	// serving until the operator has the new one ready.
	first := getAWSAuth(g)
	g.Expect(k.Delete(ctx, first)).To(Succeed())
	expectRecreated(g, first, baseEntries)

	// The worst case: the finalizer removed first, so the delete is immediate.
	second := getAWSAuth(g)
	second.Finalizers = nil
	g.Expect(k.Update(ctx, second)).To(Succeed())
	g.Expect(k.Delete(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).NotTo(Equal(second.UID))
		g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestRestoresDrift(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	ctx := context.Background()

	drifts := map[string]func(cm *corev1.ConfigMap){
		"label removed":      func(cm *corev1.ConfigMap) { delete(cm.Labels, iamv1alpha1.ManagedByLabel) },
		"label changed":      func(cm *corev1.ConfigMap) { cm.Labels[iamv1alpha1.ManagedByLabel] = "someone-else" },
		"annotation removed": func(cm *corev1.ConfigMap) { delete(cm.Annotations, iamv1alpha1.DataHashAnnotation) },
		"finalizer removed":  func(cm *corev1.ConfigMap) { cm.Finalizers = nil },
	}
	for name, drift := range drifts {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			cm := getAWSAuth(g)
			drift(cm)
			g.Expect(k.Update(ctx, cm)).To(Succeed())
			g.Eventually(func(g Gomega) {
				live := getAWSAuth(g)
				g.Expect(live.Labels).To(HaveKeyWithValue(iamv1alpha1.ManagedByLabel, iamv1alpha1.ManagedByValue))
				g.Expect(live.Annotations).To(HaveKeyWithValue(iamv1alpha1.DataHashAnnotation, awsauth.Hash(live.Data)))
				g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
				g.Expect(liveEntries(g)).To(Equal(baseEntries))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		})
	}

	t.Run("someone else's label is kept", func(t *testing.T) {
		g := NewWithT(t)
		cm := getAWSAuth(g)
		cm.Labels["team"] = "platform"
		g.Expect(k.Update(ctx, cm)).To(Succeed())
		g.Consistently(func(g Gomega) {
			g.Expect(getAWSAuth(g).Labels).To(HaveKeyWithValue("team", "platform"))
		}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	})

	t.Run("deleted and recreated with other data", func(t *testing.T) {
		g := NewWithT(t)
		cm := getAWSAuth(g)
		cm.Finalizers = nil
		g.Expect(k.Update(ctx, cm)).To(Succeed())
		g.Expect(k.Delete(ctx, cm)).To(Succeed())
		impostor := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
			Data:       map[string]string{"mapRoles": "- rolearn: arn:aws:iam::999999999999:role/intruder\n  username: x\n  groups: [system:masters]\n"},
			Immutable:  ptr.To(true),
		}
		// The operator may win the race and recreate it first; either way
		// the render must end up live.
		g.Expect(client.IgnoreAlreadyExists(k.Create(ctx, impostor))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(liveEntries(g)).To(Equal(baseEntries))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
}

func TestOldestMappingWinsAConflict(t *testing.T) {
	startOperator(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	older := role("zeta", "arn:aws:iam::111122223333:role/Shared", "zeta")
	create(t, older)
	g.Eventually(func(g Gomega) { expectReady(g, "zeta") }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	// creationTimestamp has one-second resolution: let a second boundary
	// pass so that age, not the name, decides.
	g.Eventually(func() int64 { return time.Now().Unix() }).WithTimeout(3 * time.Second).WithPolling(interval).
		Should(BeNumerically(">", older.CreationTimestamp.Unix()))

	// Same role: different case, and reached through a path.
	create(t, role("alpha", "arn:aws:iam::111122223333:role/team/shared", "alpha"))
	g.Eventually(func(g Gomega) {
		c := readyCondition(g, "alpha")
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonConflict))
		g.Expect(c.Message).To(ContainSubstring("zeta"))
		g.Expect(liveEntries(g)).To(Equal([]awsauth.Entry{
			entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/Shared", "zeta:{{SessionName}}", "zeta"),
		}))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// When the winner goes, the other one takes its place.
	g.Expect(k.Delete(ctx, older)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectReady(g, "alpha")
		g.Expect(liveEntries(g)).To(Equal([]awsauth.Entry{
			entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/shared", "alpha:{{SessionName}}", "alpha"),
		}))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestNoHotLoopAfterConvergence(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	versions := func(g Gomega) map[string]string {
		rv := map[string]string{"aws-auth": getAWSAuth(g).ResourceVersion}
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		for _, m := range list.Items {
			rv[m.Name] = m.ResourceVersion
		}
		return rv
	}
	settled := versions(g)
	g.Consistently(versions).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(settled))
}

func TestCachesNoOtherConfigMap(t *testing.T) {
	op := startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "not-aws-auth"}}
	g.Expect(client.IgnoreAlreadyExists(k.Create(ctx, other))).To(Succeed())

	// aws-auth is read from the API server, but should anything read a
	// ConfigMap through the cache, it holds aws-auth and nothing else.
	g.Eventually(func(g Gomega) {
		g.Expect(op.mgr.GetCache().Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{})).To(Succeed())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	err := op.mgr.GetCache().Get(ctx, types.NamespacedName{Namespace: "kube-system", Name: "not-aws-auth"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
	var cached corev1.ConfigMapList
	g.Expect(op.mgr.GetCache().List(ctx, &cached, client.InNamespace("kube-system"))).To(Succeed())
	g.Expect(cached.Items).To(HaveLen(1))
}

func TestEventsSayWhatHappened(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k.Delete(ctx, getAWSAuth(g))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(normalEvents(g, "Recreated", began)).NotTo(BeEmpty())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	create(t, role("copy-of-admins", adminARN, "other"))
	g.Eventually(func(g Gomega) {
		events := warningEvents(g, iamv1alpha1.ReasonConflict, began)
		g.Expect(events).To(ContainElement(HaveField("Regarding.Name", "copy-of-admins")))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestAWSAuthStaysOutOfArgoCD(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	cm := getAWSAuth(g)
	g.Expect(cm.Annotations).To(HaveKeyWithValue("argocd.argoproj.io/compare-options", "IgnoreExtraneous"))
	g.Expect(cm.Annotations).To(HaveKeyWithValue("argocd.argoproj.io/sync-options", "Prune=false,Delete=false"))

	// An Argo CD application that picks aws-auth up loses its claim.
	cm.Labels["app.kubernetes.io/instance"] = "platform"
	cm.Annotations["argocd.argoproj.io/tracking-id"] = "platform:/ConfigMap:kube-system/aws-auth"
	g.Expect(k.Update(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.Labels).NotTo(HaveKey("app.kubernetes.io/instance"))
		g.Expect(live.Annotations).NotTo(HaveKey("argocd.argoproj.io/tracking-id"))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
