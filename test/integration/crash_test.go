package integration

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// These tests stop an operator halfway through a replace of aws-auth, as a
// crash would, and check that the next operator finishes the job. The
// faults are injected by the real API server (ValidatingAdmissionPolicies
// that deny one step of the replace), not by hooks in the operator.

// crashChangedEntries is baseEntries after crashChangeAdmins.
var crashChangedEntries = []awsauth.Entry{
	entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "platform:admins"),
	entry(awsauth.MapRoles, nodeRoleARN, "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
	entry(awsauth.MapUsers, userARN, "jane"),
	entry(awsauth.MapAccounts, "444455556666", ""),
}

// crashStart starts one operator on a clean cluster, creates mappings and
// waits until aws-auth holds want and every mapping is Ready.
func crashStart(t *testing.T, mappings []client.Object, want []awsauth.Entry) *operator {
	t.Helper()
	op := startOperator(t, managed.Immutable)
	create(t, mappings...)
	crashExpectConverged(t, want, crashNames(mappings)...)
	return op
}

// crashExpectConverged waits until aws-auth is live (not terminating, with
// our finalizer) and holds exactly want, and the named mappings are Ready.
func crashExpectConverged(t *testing.T, want []awsauth.Entry, ready ...string) *corev1.ConfigMap {
	t.Helper()
	var live *corev1.ConfigMap
	NewWithT(t).Eventually(func(g Gomega) {
		live = getAWSAuth(g)
		g.Expect(live.DeletionTimestamp).To(BeNil(), "aws-auth is terminating")
		g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
		g.Expect(liveEntries(g)).To(Equal(want))
		expectReady(g, ready...)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return live
}

func crashNames(objs []client.Object) []string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.GetName()
	}
	return names
}

// crashSetGroups changes a mapping's groups with a merge patch: no
// resourceVersion, so the operator's own writes cannot make it conflict.
func crashSetGroups(ctx context.Context, name string, groups ...string) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"groups": groups}})
	if err != nil {
		return err
	}
	return k.Patch(ctx, mapping(name), client.RawPatch(types.MergePatchType, patch))
}

// crashChangeAdmins changes the admins mapping so that aws-auth must be
// replaced.
func crashChangeAdmins(t *testing.T) {
	t.Helper()
	if err := crashSetGroups(context.Background(), "admins", "platform:admins"); err != nil {
		t.Fatalf("changing admins: %v", err)
	}
}

// crashPolicy denies, at admission, every request on kube-system/aws-auth
// for which fault is false. Whatever fault says, it also denies a dry-run
// create of aws-auth, which nothing but crashPolicyInEffect sends: that is
// how a test knows the API server has loaded (or dropped) the policy.
type crashPolicy struct {
	name string
}

// crashDeny creates the policy and its binding, waits until the API server
// enforces them, and removes them when the test ends, however it ends.
func crashDeny(t *testing.T, name string, operations []admissionregistrationv1.OperationType, fault, message string) *crashPolicy {
	t.Helper()
	ctx := context.Background()
	p := &crashPolicy{name: name}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					ResourceNames: []string{managed.AWSAuthKey.Name},
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: append([]admissionregistrationv1.OperationType{admissionregistrationv1.Create}, operations...),
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{""},
							APIVersions: []string{"v1"},
							Resources:   []string{"configmaps"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "aws-auth-namespace",
				Expression: "request.namespace == '" + managed.AWSAuthKey.Namespace + "'",
			}},
			Validations: []admissionregistrationv1.Validation{
				{Expression: fault, Message: message},
				{Expression: "!(request.dryRun && request.operation == 'CREATE')", Message: "crash test probe: the policy is in effect"},
			},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	t.Cleanup(func() { p.lift(t) })
	create(t, policy, binding)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(p.inEffect(ctx)).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "policy %s never took effect", name)
	return p
}

// inEffect sends a dry-run create of aws-auth: the policy denies it, and
// without the policy it is answered AlreadyExists (or succeeds, creating
// nothing).
func (p *crashPolicy) inEffect(ctx context.Context) (bool, error) {
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name}}
	err := k.Create(ctx, probe, client.DryRunAll)
	switch {
	case err == nil || apierrors.IsAlreadyExists(err):
		return false, nil
	case strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+p.name+"'"):
		return true, nil
	}
	return false, err
}

// lift deletes the policy and its binding and waits until the API server
// no longer enforces them. Safe to call more than once.
func (p *crashPolicy) lift(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	g.Expect(client.IgnoreNotFound(k.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: p.name}}))).To(Succeed())
	g.Expect(client.IgnoreNotFound(k.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.name}}))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(p.inEffect(ctx)).To(BeFalse())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "policy %s is still in effect after its deletion", p.name)
}

// crashReconcileErrors is how many reconciles of aws-auth have failed in
// this process so far, by controller-runtime's own metric.
func crashReconcileErrors(g Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "aws-auth" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestCrashAfterDeleteBeforeFinalizerRelease(t *testing.T) {
	op := crashStart(t, baseMappings(), baseEntries)
	g := NewWithT(t)
	// Admission sees a patch as an UPDATE; the delete itself (which only
	// sets deletionTimestamp, because of the finalizer) is a DELETE and
	// goes through.
	policy := crashDeny(t, "crash-test-hold-finalizer",
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Update},
		"request.operation != 'UPDATE' || !has(oldObject.metadata.deletionTimestamp)",
		"crash test: a terminating aws-auth keeps its finalizer")
	old := getAWSAuth(g)

	crashChangeAdmins(t)
	// The operator deleted aws-auth and cannot release it: the old object
	// goes on serving the old entries.
	g.Eventually(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).To(Equal(old.UID))
		g.Expect(live.DeletionTimestamp).NotTo(BeNil(), "the replace did not start")
		g.Expect(live.Finalizers).To(ContainElement(iamv1alpha1.ProtectionFinalizer))
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	op.stop()
	policy.lift(t)
	// Nothing but a new operator can finish the replace now.
	g.Expect(getAWSAuth(g).DeletionTimestamp).NotTo(BeNil())
	runOperator(t, managed.Immutable)

	live := crashExpectConverged(t, crashChangedEntries, "nodes", "admins", "jane", "partner")
	g.Expect(live.UID).NotTo(Equal(old.UID))
}

func TestCrashAfterFinalizerReleaseBeforeCreate(t *testing.T) {
	op := crashStart(t, baseMappings(), baseEntries)
	g := NewWithT(t)
	policy := crashDeny(t, "crash-test-deny-create", nil,
		"request.operation != 'CREATE'",
		"crash test: aws-auth may not be created")
	errorsBefore := crashReconcileErrors(g)

	crashChangeAdmins(t)
	// The old object is gone and the new one cannot be created: the one
	// window without mappings, held open. The operator keeps retrying.
	g.Eventually(func(g Gomega) {
		err := k.Get(context.Background(), managed.AWSAuthKey, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "aws-auth: %v", err)
		g.Expect(crashReconcileErrors(g)).To(BeNumerically(">=", errorsBefore+2), "the operator did not retry")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	op.stop()
	policy.lift(t)
	began := time.Now().Truncate(time.Second)
	err := k.Get(context.Background(), managed.AWSAuthKey, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "aws-auth: %v", err)
	runOperator(t, managed.Immutable)

	crashExpectConverged(t, crashChangedEntries, "nodes", "admins", "jane", "partner")
	// The new operator brought back the data last applied (the backup)
	// before anything else, then replaced it with the render.
	g.Eventually(func(g Gomega) {
		g.Expect(normalEvents(g, "Restored", began)).NotTo(BeEmpty())
		g.Expect(normalEvents(g, "Replaced", began)).NotTo(BeEmpty())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

func TestCrashDeletedByAPersonWhileOperatorDown(t *testing.T) {
	op := crashStart(t, baseMappings(), baseEntries)
	g := NewWithT(t)
	ctx := context.Background()
	op.stop()

	// What `kubectl delete configmap aws-auth -n kube-system` sends.
	old := getAWSAuth(g)
	g.Expect(k.Delete(ctx, old, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	// With the operator down the finalizer keeps it, terminating but
	// serving: the cluster goes on working.
	g.Consistently(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.UID).To(Equal(old.UID))
		g.Expect(live.DeletionTimestamp).NotTo(BeNil())
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	runOperator(t, managed.Immutable)
	live := crashExpectConverged(t, baseEntries, "nodes", "admins", "jane", "partner")
	g.Expect(live.UID).NotTo(Equal(old.UID))
}

// crashAbsence polls aws-auth until stopped and records the longest time
// it was seen missing.
type crashAbsence struct {
	stop func() (longest time.Duration, gaps int)
}

func crashWatchAbsence(t *testing.T) *crashAbsence {
	t.Helper()
	// Bounded even if the test never calls stop.
	ctx, cancel := context.WithTimeout(context.Background(), 5*timeout)
	type result struct {
		longest time.Duration
		gaps    int
	}
	done := make(chan result, 1)
	go func() {
		var r result
		var missingSince time.Time
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				if !missingSince.IsZero() {
					r.longest = max(r.longest, time.Since(missingSince))
					r.gaps++
				}
				done <- r
				return
			case <-ticker.C:
			}
			err := k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{})
			now := time.Now()
			switch {
			case apierrors.IsNotFound(err):
				if missingSince.IsZero() {
					missingSince = now
				}
			case err == nil && !missingSince.IsZero():
				r.longest = max(r.longest, now.Sub(missingSince))
				r.gaps++
				missingSince = time.Time{}
			}
		}
	}()
	a := &crashAbsence{stop: sync.OnceValues(func() (time.Duration, int) {
		cancel()
		r := <-done
		return r.longest, r.gaps
	})}
	t.Cleanup(func() { a.stop() })
	return a
}

func TestTwoOperatorsAtOnce(t *testing.T) {
	base := append(baseMappings(),
		role("viewers", "arn:aws:iam::111122223333:role/viewers", "viewers"),
		role("auditors", "arn:aws:iam::111122223333:role/auditors", "auditors"),
	)
	crashStart(t, base, []awsauth.Entry{
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "system:masters"),
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/auditors", "auditors:{{SessionName}}", "auditors"),
		entry(awsauth.MapRoles, nodeRoleARN, "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/viewers", "viewers:{{SessionName}}", "viewers"),
		entry(awsauth.MapUsers, userARN, "jane"),
		entry(awsauth.MapAccounts, "444455556666", ""),
	})
	// A second one, without leader election: only the preconditions on
	// every write keep them from clobbering each other.
	runOperator(t, managed.Immutable)
	g := NewWithT(t)
	ctx := context.Background()

	absence := crashWatchAbsence(t)
	devRole := func(name string) client.Object {
		return role(name, "arn:aws:iam::111122223333:role/"+name, "dev")
	}
	// No render of any prefix of these steps removes more than half the
	// entries of another, nor the nodes: the guards never hold a write.
	steps := []func() error{
		func() error { return k.Create(ctx, devRole("dev-0")) },
		func() error { return k.Create(ctx, devRole("dev-1")) },
		func() error { return k.Create(ctx, devRole("dev-2")) },
		func() error { return crashSetGroups(ctx, "admins", "platform:admins") },
		func() error { return crashSetGroups(ctx, "dev-0", "dev", "oncall") },
		func() error { return k.Delete(ctx, mapping("dev-1")) },
		func() error { return k.Create(ctx, devRole("dev-3")) },
		func() error { return crashSetGroups(ctx, "viewers", "viewers", "readers") },
		func() error { return k.Delete(ctx, mapping("dev-2")) },
		func() error {
			return k.Create(ctx, mapping("dev-4", withARN("arn:aws:iam::111122223333:user/dev-4"), withUsername("dev-4")))
		},
		func() error { return crashSetGroups(ctx, "dev-3", "ops") },
		func() error { return k.Delete(ctx, mapping("jane")) },
		func() error { return k.Create(ctx, mapping("partner-2", withAccount("777788889999"))) },
		func() error { return crashSetGroups(ctx, "admins", "system:masters") },
		func() error { return crashSetGroups(ctx, "dev-0", "dev") },
		func() error { return k.Delete(ctx, mapping("dev-3")) },
		func() error { return k.Create(ctx, devRole("dev-5")) },
		func() error { return crashSetGroups(ctx, "auditors", "auditors", "security") },
		func() error { return k.Delete(ctx, mapping("dev-5")) },
		func() error { return crashSetGroups(ctx, "viewers", "viewers") },
	}
	for i, step := range steps {
		g.Expect(step()).To(Succeed(), "step %d", i)
	}

	want := []awsauth.Entry{
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/admins", "admins:{{SessionName}}", "system:masters"),
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/auditors", "auditors:{{SessionName}}", "auditors", "security"),
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/dev-0", "dev-0:{{SessionName}}", "dev"),
		entry(awsauth.MapRoles, nodeRoleARN, "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		entry(awsauth.MapRoles, "arn:aws:iam::111122223333:role/viewers", "viewers:{{SessionName}}", "viewers"),
		entry(awsauth.MapUsers, "arn:aws:iam::111122223333:user/dev-4", "dev-4"),
		entry(awsauth.MapAccounts, "444455556666", ""),
		entry(awsauth.MapAccounts, "777788889999", ""),
	}
	converged := crashExpectConverged(t, want, "nodes", "admins", "partner", "viewers", "auditors", "dev-0", "dev-4", "partner-2")
	// The deleted mappings were let go once aws-auth no longer had them.
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"jane", "dev-1", "dev-2", "dev-3", "dev-5"} {
			err := k.Get(ctx, client.ObjectKey{Name: name}, &iamv1alpha1.IAMIdentityMapping{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "mapping %s: %v", name, err)
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	// The two agree and leave it alone.
	g.Consistently(func(g Gomega) {
		live := getAWSAuth(g)
		g.Expect(live.ResourceVersion).To(Equal(converged.ResourceVersion))
		g.Expect(live.DeletionTimestamp).To(BeNil())
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	longest, gaps := absence.stop()
	t.Logf("aws-auth was seen missing %d times, for at most %v", gaps, longest)
	g.Expect(longest).To(BeNumerically("<", 2*time.Second), "aws-auth was missing for too long")
}
