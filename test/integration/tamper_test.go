package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// forgedRoles is what an attacker with edit rights adds to aws-auth or its
// backup: a role made cluster-admin, and enough filler that removing it
// all is more than the share the guards allow at once.
func forgedRoles() string {
	var b strings.Builder
	b.WriteString("- rolearn: arn:aws:iam::999988887777:role/attacker\n  username: attacker\n  groups:\n  - system:masters\n")
	for i := range 8 {
		fmt.Fprintf(&b, "- rolearn: arn:aws:iam::999988887777:role/filler-%d\n  username: filler-%d\n", i, i)
	}
	return b.String()
}

func TestForeignFinalizersDoNotStallReplaces(t *testing.T) {
	startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	ctx := context.Background()
	g := NewWithT(t)
	hold := func() *corev1.ConfigMap {
		cm := getAWSAuth(g)
		cm.Finalizers = append(cm.Finalizers, "example.com/hold")
		g.Expect(k.Update(ctx, cm)).To(Succeed())
		return cm
	}

	t.Run("a mapping change replaces aws-auth", func(t *testing.T) {
		g := NewWithT(t)
		before := hold()
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(k.Get(ctx, client.ObjectKey{Name: "jane"}, m)).To(Succeed())
		m.Spec.Groups = []iamv1alpha1.IdentityName{"ops"}
		g.Expect(k.Update(ctx, m)).To(Succeed())
		want := append(baseEntries[:2:2], entry("mapUsers", userARN, "jane", "ops"), baseEntries[3])
		expectRecreated(g, before, want)
		g.Expect(getAWSAuth(g).Finalizers).To(Equal([]string{iamv1alpha1.ProtectionFinalizer}))
	})
	t.Run("a deleted aws-auth is recreated", func(t *testing.T) {
		g := NewWithT(t)
		before := hold()
		g.Expect(k.Delete(ctx, before)).To(Succeed())
		g.Eventually(func(g Gomega) {
			live := getAWSAuth(g)
			g.Expect(live.UID).NotTo(Equal(before.UID))
			g.Expect(live.DeletionTimestamp).To(BeNil())
			g.Expect(live.Finalizers).To(Equal([]string{iamv1alpha1.ProtectionFinalizer}))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
	g.Eventually(func(g Gomega) {
		events := warningEvents(g, "ForeignFinalizersRemoved", began)
		g.Expect(events).NotTo(BeEmpty())
		g.Expect(events[0].Note).To(ContainSubstring("example.com/hold"))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// TestEntriesAddedBySomeoneElseAreNotProtectedByTheGuards: the guards
// measure a render against what the operator applied. Undoing forged
// additions removes most of what aws-auth holds, and is still drift,
// restored at once.
func TestEntriesAddedBySomeoneElseAreNotProtectedByTheGuards(t *testing.T) {
	startWithMappings(t, managed.Mutable)
	began := time.Now().Truncate(time.Second)
	ctx := context.Background()
	g := NewWithT(t)
	forged := getAWSAuth(g)
	forged.Data["mapRoles"] += forgedRoles()
	g.Expect(k.Update(ctx, forged)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(warningEvents(g, iamv1alpha1.ReasonBlocked, began)).To(BeEmpty())
}

// TestForgedBackupIsNotRestored: a backup whose data does not match its
// hash annotation was written by someone else. When aws-auth goes, it is
// neither restored nor held live by the guards: the render is.
func TestForgedBackupIsNotRestored(t *testing.T) {
	op := startWithMappings(t, managed.Immutable)
	began := time.Now().Truncate(time.Second)
	ctx := context.Background()
	g := NewWithT(t)
	// The running operator knows what it wrote; a new one reads the backup.
	op.stop()
	rejectedBefore := metricValue(g, "aws_auth_guardian_backup_rejected_total", nil)

	backup := &corev1.ConfigMap{}
	g.Expect(k.Get(ctx, backupKey, backup)).To(Succeed())
	backup.Data["mapRoles"] += forgedRoles()
	g.Expect(k.Update(ctx, backup)).To(Succeed())
	forceDelete(g, getAWSAuth(g))

	runOperator(t, managed.Immutable)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
		expectReady(g, "nodes", "admins", "jane", "partner")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(warningEvents(g, iamv1alpha1.ReasonBlocked, began)).To(BeEmpty())
	g.Eventually(func(g Gomega) {
		g.Expect(warningEvents(g, "BackupRejected", began)).NotTo(BeEmpty())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(metricValue(g, "aws_auth_guardian_backup_rejected_total", nil)).To(Equal(rejectedBefore + 1))
	// The backup is the operator's again.
	g.Eventually(func(g Gomega) {
		g.Expect(k.Get(ctx, backupKey, backup)).To(Succeed())
		g.Expect(backup.Data).To(Equal(getAWSAuth(g).Data))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
