package integration

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// allowedHash is what a Blocked status tells a person to put in the
// override annotation.
var allowedHash = regexp.MustCompile(iamv1alpha1.AllowRenderAnnotation + `=([0-9a-f]{64})`)

// expectBlocked waits until name is held by a guard, and returns the hash
// that allows the refused render.
func expectBlocked(g Gomega, name, because string) string {
	var hash string
	g.Eventually(func(g Gomega) {
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(k.Get(context.Background(), client.ObjectKey{Name: name}, m)).To(Succeed())
		c := readyConditionOf(m)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(iamv1alpha1.ReasonBlocked))
		g.Expect(c.Message).To(ContainSubstring(because))
		match := allowedHash.FindStringSubmatch(c.Message)
		g.Expect(match).To(HaveLen(2), "the message names no hash to allow: %s", c.Message)
		hash = match[1]
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return hash
}

// expectUnchanged checks that aws-auth stays exactly as it is for a while.
func expectUnchanged(g Gomega, before *corev1.ConfigMap) {
	g.Consistently(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).To(Equal(before.UID))
		g.Expect(live.ResourceVersion).To(Equal(before.ResourceVersion))
	}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

func allow(g Gomega, hash string) {
	cm := getAWSAuth(g)
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[iamv1alpha1.AllowRenderAnnotation] = hash
	g.Expect(k.Update(context.Background(), cm)).To(Succeed())
}

func TestGuardKeepsTheLastNodeRole(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	g := NewWithT(t)
	ctx := context.Background()
	before := getAWSAuth(g)

	g.Expect(k.Delete(ctx, mapping("nodes"))).To(Succeed())
	hash := expectBlocked(g, "nodes", "nodes could no longer join")
	expectUnchanged(g, before)
	g.Expect(liveEntries(g)).To(Equal(baseEntries))
	g.Expect(warningEvents(g, iamv1alpha1.ReasonBlocked, began)).NotTo(BeEmpty())

	// A person who means it allows exactly this render.
	allow(g, hash)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal([]awsauth.Entry{baseEntries[0], baseEntries[2], baseEntries[3]}))
		err := k.Get(ctx, client.ObjectKey{Name: "nodes"}, &iamv1alpha1.IAMIdentityMapping{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the deleted mapping must be released once aws-auth is written without it")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestGuardRefusesRemovingMostEntriesAtOnce(t *testing.T) {
	op := startOperator(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()
	for i := range 10 {
		m := mapping(fmt.Sprintf("user-%d", i), withARN(fmt.Sprintf("arn:aws:iam::111122223333:user/u%d", i)), withUsername(fmt.Sprintf("u%d", i)))
		if i >= 4 {
			m.Labels = map[string]string{"batch": "doomed"}
		}
		create(t, m)
	}
	g.Eventually(func(g Gomega) { g.Expect(liveEntries(g)).To(HaveLen(10)) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	before := getAWSAuth(g)

	// Six of ten in one go, more than the 50% allowed: a prune while the
	// operator was away (one that keeps up sees them one by one).
	op.stop()
	g.Expect(k.DeleteAllOf(ctx, &iamv1alpha1.IAMIdentityMapping{}, client.MatchingLabels{"batch": "doomed"})).To(Succeed())
	runOperator(t, managed.Immutable)
	hash := expectBlocked(g, "user-9", "removes 6 of the 10 entries")
	expectUnchanged(g, before)

	allow(g, hash)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(HaveLen(4))
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(4))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// reinstallCRD puts the CRD back after a test that deleted it.
func reinstallCRD(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	// Whatever the test left: let every mapping go so a deleted CRD can go too.
	var list iamv1alpha1.IAMIdentityMappingList
	if err := k.List(ctx, &list); err == nil {
		for i := range list.Items {
			forceDelete(g, &list.Items[i])
		}
	}
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k.Get(ctx, client.ObjectKey{Name: managed.CRDName}, &apiextensionsv1.CustomResourceDefinition{}))
	}).WithTimeout(timeout).WithPolling(interval).Should(BeTrue())
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: crdPaths, ErrorIfPathMissing: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() error {
		return k.List(ctx, &iamv1alpha1.IAMIdentityMappingList{})
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func deleteCRD(g Gomega) {
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: managed.CRDName}}
	g.Expect(k.Delete(context.Background(), crd)).To(Succeed())
}

func TestDeletingTheCRDLeavesAWSAuthAsItIs(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	t.Cleanup(func() { reinstallCRD(t) })
	g := NewWithT(t)
	ctx := context.Background()
	before := getAWSAuth(g)

	// Deleting the CRD deletes every mapping; their finalizers hold them,
	// so the CRD stays Terminating and aws-auth keeps every entry.
	deleteCRD(g)
	g.Eventually(func(g Gomega) {
		var list iamv1alpha1.IAMIdentityMappingList
		g.Expect(k.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(baseEntries)))
		for _, m := range list.Items {
			g.Expect(m.DeletionTimestamp).NotTo(BeNil())
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(k.Get(ctx, client.ObjectKey{Name: managed.CRDName}, &apiextensionsv1.CustomResourceDefinition{})).To(Succeed())
		live := getAWSAuth(g)
		g.Expect(live.UID).To(Equal(before.UID))
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	g.Expect(warningEvents(g, iamv1alpha1.ReasonBlocked, began)).To(ContainElement(HaveField("Note", ContainSubstring("the IAMIdentityMapping CRD is being deleted"))))

	// Even deleted meanwhile, aws-auth comes back with what it served.
	g.Expect(k.Delete(ctx, before)).To(Succeed())
	expectRecreated(g, before, baseEntries)
}

func TestRestoresFromTheBackupWithoutTheCRD(t *testing.T) {
	// The data a previous operator applied, and nothing else: no CRD, no
	// mappings, no aws-auth.
	op := startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		backup := &corev1.ConfigMap{}
		g.Expect(k.Get(context.Background(), backupKey, backup)).To(Succeed())
		g.Expect(backup.Data).To(Equal(getAWSAuth(g).Data))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	t.Cleanup(func() { reinstallCRD(t) })
	op.stop()
	deleteCRD(g)
	var list iamv1alpha1.IAMIdentityMappingList
	g.Expect(k.List(context.Background(), &list)).To(Succeed())
	for i := range list.Items {
		forceDelete(g, &list.Items[i])
	}
	forceDelete(g, getAWSAuth(g))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k.Get(context.Background(), client.ObjectKey{Name: managed.CRDName}, &apiextensionsv1.CustomResourceDefinition{}))
	}).WithTimeout(timeout).WithPolling(interval).Should(BeTrue())

	runOperator(t, managed.Immutable)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
		g.Expect(normalEvents(g, "Restored", began)).NotTo(BeEmpty())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
