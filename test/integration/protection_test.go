package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

const (
	operatorUser    = "system:serviceaccount:aws-auth-guardian-system:aws-auth-guardian-controller-manager"
	breakGlassGroup = "aws-auth-guardian:break-glass"
)

// userClient is a client with its own identity, made by envtest.
func userClient(t *testing.T, name string, groups ...string) (client.Client, *rest.Config) {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{Name: name, Groups: groups}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(user.Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, user.Config()
}

// applyConfig creates every object of the YAML files of a config/ folder,
// exactly as shipped, and deletes them when the test ends.
func applyConfig(t *testing.T, dir string) {
	t.Helper()
	g := NewWithT(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		f, err := os.Open(file)
		g.Expect(err).NotTo(HaveOccurred())
		decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := decoder.Decode(&u.Object); err != nil {
				break
			}
			if len(u.Object) == 0 {
				continue
			}
			g.Expect(client.IgnoreAlreadyExists(k.Create(context.Background(), u))).To(Succeed(), "%s %s", file, u.GetName())
			t.Cleanup(func() { _ = k.Delete(context.Background(), u) })
		}
		_ = f.Close()
	}
}

// protect installs config/policy and waits until the API server enforces
// it: policies load asynchronously.
func protect(t *testing.T) {
	t.Helper()
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"}}
	// Registered first, so it runs after the policies are deleted: wait
	// until they no longer apply, so later tests are not denied.
	t.Cleanup(func() {
		NewWithT(t).Eventually(func() error {
			return client.IgnoreAlreadyExists(k.Create(context.Background(), probe.DeepCopy(), client.DryRunAll))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
	applyConfig(t, "config/policy")
	NewWithT(t).Eventually(func() error {
		return k.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("managed by aws-auth-guardian")))
}

func expectForbidden(g Gomega, err error, message string) {
	g.Expect(err).To(HaveOccurred())
	g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring(message))
}

// TestOperatorWithItsOwnRBACBehindThePolicies runs the operator as its
// service account, bound only to config/rbac, with config/policy in force,
// and checks who may do what to aws-auth.
func TestOperatorWithItsOwnRBACBehindThePolicies(t *testing.T) {
	resetCluster(t)
	applyConfig(t, "config/rbac")
	protect(t)
	_, operatorConfig := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	operatorClient, _ := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	admin, _ := userClient(t, "alice", "system:masters")
	breakGlass, _ := userClient(t, "bob", "system:masters", breakGlassGroup)
	ctx := context.Background()
	g := NewWithT(t)

	runOperatorAs(t, operatorConfig, managed.Immutable)
	create(t, baseMappings()...)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
		expectReady(g, "nodes", "admins", "jane", "partner")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	t.Run("an admin cannot delete aws-auth", func(t *testing.T) {
		expectForbidden(NewWithT(t), admin.Delete(ctx, getAWSAuth(NewWithT(t))), "Edit IAMIdentityMapping objects instead")
	})
	t.Run("an admin cannot delete every ConfigMap of kube-system", func(t *testing.T) {
		g := NewWithT(t)
		before := getAWSAuth(g)
		expectForbidden(g, admin.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace("kube-system")), "managed by aws-auth-guardian")
		live := getAWSAuth(g)
		g.Expect(live.UID).To(Equal(before.UID))
		g.Expect(live.DeletionTimestamp).To(BeNil())
	})
	t.Run("an admin cannot change the data", func(t *testing.T) {
		g := NewWithT(t)
		cm := getAWSAuth(g)
		// Immutable data is refused by the API server's own validation,
		// before admission; TestPoliciesProtectTheCRDAndCriticalRBAC shows
		// the policy refusing it on a mutable aws-auth.
		cm.Data["mapRoles"] = ""
		g.Expect(apierrors.IsInvalid(admin.Update(ctx, cm))).To(BeTrue())
	})
	t.Run("an admin cannot remove the finalizer", func(t *testing.T) {
		g := NewWithT(t)
		cm := getAWSAuth(g)
		cm.Finalizers = nil
		expectForbidden(g, admin.Update(ctx, cm), "only its labels and annotations may be changed")
	})
	t.Run("an admin can label it", func(t *testing.T) {
		g := NewWithT(t)
		cm := getAWSAuth(g)
		cm.Labels["team"] = "platform"
		g.Expect(admin.Update(ctx, cm)).To(Succeed())
	})
	t.Run("the operator may not read other ConfigMaps or Secrets", func(t *testing.T) {
		g := NewWithT(t)
		err := operatorClient.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "extension-apiserver-authentication"}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		g.Expect(apierrors.IsForbidden(operatorClient.List(ctx, &corev1.SecretList{}))).To(BeTrue())
		g.Expect(apierrors.IsForbidden(operatorClient.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("kube-system")))).To(BeTrue())
		g.Expect(apierrors.IsForbidden(operatorClient.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace("kube-system")))).To(BeTrue())
	})
	t.Run("the operator may create no other ConfigMap", func(t *testing.T) {
		other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "not-aws-auth"}}
		expectForbidden(NewWithT(t), operatorClient.Create(ctx, other, client.DryRunAll), "may create only kube-system/aws-auth")
	})
	t.Run("break-glass may delete aws-auth, and the operator heals it", func(t *testing.T) {
		g := NewWithT(t)
		before := getAWSAuth(g)
		g.Expect(breakGlass.Delete(ctx, before)).To(Succeed())
		expectRecreated(g, before, baseEntries)
	})
	t.Run("the operator replaces aws-auth when a mapping changes", func(t *testing.T) {
		g := NewWithT(t)
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(k.Get(ctx, client.ObjectKey{Name: "jane"}, m)).To(Succeed())
		m.Spec.Groups = []iamv1alpha1.IdentityName{"ops"}
		g.Expect(k.Update(ctx, m)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(liveEntries(g)).To(ContainElement(entry("mapUsers", userARN, "jane", "ops")))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
}

// TestOperatorReportsThePoliciesRealState runs the report as the operator
// (its own RBAC) and disarms policies the ways a cluster-admin could: each
// shows as 0 with its reason logged once, and as 1 again once restored.
func TestOperatorReportsThePoliciesRealState(t *testing.T) {
	resetCluster(t)
	applyConfig(t, "config/rbac")
	g := NewWithT(t)
	ctx := context.Background()
	shipped, err := controllers.ParseShippedPolicies(os.DirFS(filepath.Join(repoRoot, "config", "policy")), operatorNamespace)
	g.Expect(err).NotTo(HaveOccurred())
	operatorClient, _ := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	logs := &logLines{}
	runReport(t, &controllers.ProtectionReport{
		Reader:   operatorClient,
		Shipped:  shipped,
		Interval: 200 * time.Millisecond,
		Log:      funcr.New(logs.add, funcr.Options{}),
	})
	// want is the gauge of each policy: 1 for those installed as shipped.
	expectGauges := func(want func(policy string) float64) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			for _, policy := range controllers.ProtectionPolicies {
				g.Expect(policyGauge(g, policy)).To(Equal(want(policy)), policy)
			}
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	}
	allBut := func(disarmed string) func(string) float64 {
		return func(policy string) float64 {
			if _, ok := shipped[policy]; !ok || policy == disarmed {
				return 0
			}
			return 1
		}
	}
	expectLogged := func(policy, problem string) {
		t.Helper()
		g.Eventually(func() int { return logs.count(policy, problem) }).
			WithTimeout(timeout).WithPolling(interval).Should(Equal(1))
		// Once per change: the checks that follow see the same state and
		// stay quiet.
		g.Consistently(func() int { return logs.count(policy, problem) }).
			WithTimeout(time.Second).WithPolling(interval).Should(Equal(1))
	}

	expectGauges(func(string) float64 { return 0 })
	expectLogged("aws-auth-guardian-protect-crd", "the ValidatingAdmissionPolicy is missing")

	protect(t)
	expectGauges(allBut(""))
	expectLogged("aws-auth-guardian-protect-crd", "is installed as shipped and denies")

	crdBinding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	g.Expect(k.Get(ctx, client.ObjectKey{Name: "aws-auth-guardian-protect-crd"}, crdBinding)).To(Succeed())
	crdBinding.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
	g.Expect(k.Update(ctx, crdBinding)).To(Succeed())
	expectGauges(allBut("aws-auth-guardian-protect-crd"))
	expectLogged("aws-auth-guardian-protect-crd", "the binding does not Deny: its validationActions are [Warn]")
	crdBinding.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	g.Expect(k.Update(ctx, crdBinding)).To(Succeed())
	expectGauges(allBut(""))

	const creates = "aws-auth-guardian-operator-creates"
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	g.Expect(k.Get(ctx, client.ObjectKey{Name: creates}, policy)).To(Succeed())
	policy.Spec.Validations[0].Expression = "true"
	g.Expect(k.Update(ctx, policy)).To(Succeed())
	expectGauges(allBut(creates))
	expectLogged(creates, "the ValidatingAdmissionPolicy's spec differs from the shipped one in validations")
	policy.Spec = *shipped[creates].Policy.Spec.DeepCopy()
	g.Expect(k.Update(ctx, policy)).To(Succeed())
	expectGauges(allBut(""))

	g.Expect(k.Delete(ctx, shipped[creates].Binding.DeepCopy())).To(Succeed())
	expectGauges(allBut(creates))
	expectLogged(creates, "the ValidatingAdmissionPolicyBinding of the same name is missing")
	g.Expect(k.Create(ctx, shipped[creates].Binding.DeepCopy())).To(Succeed())
	expectGauges(allBut(""))
}

// runReport runs the report until the test ends.
func runReport(t *testing.T, report *controllers.ProtectionReport) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- report.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("protection report: %v", err)
		}
	})
}

// logLines keeps what a funcr logger writes.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(_, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, args)
}

// count is how many lines are about policy and contain text.
func (l *logLines) count(policy, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, `"policy"="`+policy+`"`) && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

func policyGauge(g Gomega, policy string) float64 {
	return metricValue(g, "aws_auth_guardian_protection_policy_installed", map[string]string{"policy": policy})
}

func TestPoliciesProtectTheCRDAndCriticalRBAC(t *testing.T) {
	resetCluster(t)
	protect(t)
	applyConfig(t, "config/components/protect-rbac")
	admin, _ := userClient(t, "alice", "system:masters")
	breakGlass, _ := userClient(t, "bob", "system:masters", breakGlassGroup)
	ctx := context.Background()
	g := NewWithT(t)

	// Dry runs go through admission without deleting anything.
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: managed.CRDName}}
	g.Eventually(func() error {
		return admin.Delete(ctx, crd, client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("Deleting the IAMIdentityMapping CRD deletes every mapping")))
	g.Expect(breakGlass.Delete(ctx, crd, client.DryRunAll)).To(Succeed())

	for _, obj := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "system:basic-user"}},
	} {
		g.Eventually(func() error {
			return admin.Delete(ctx, obj, client.DryRunAll)
		}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("is critical to the cluster")))
		g.Expect(breakGlass.Delete(ctx, obj, client.DryRunAll)).To(Succeed())
	}
	// In mutable mode the data could change; the policy refuses it.
	mutable := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data:       map[string]string{"mapRoles": "- rolearn: " + nodeRoleARN + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n"},
	}
	expectForbidden(g, admin.Create(ctx, mutable.DeepCopy()), "CREATE is not allowed")
	g.Expect(breakGlass.Create(ctx, mutable)).To(Succeed())
	t.Cleanup(func() { _ = breakGlass.Delete(ctx, mutable) })
	edited := mutable.DeepCopy()
	edited.Data["mapRoles"] = ""
	expectForbidden(g, admin.Update(ctx, edited), "only its labels and annotations may be changed")
	g.Expect(breakGlass.Update(ctx, edited)).To(Succeed())

	// Ordinary RBAC objects stay deletable.
	ordinary := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "team-viewer"}}
	g.Expect(admin.Create(ctx, ordinary)).To(Succeed())
	g.Expect(admin.Delete(ctx, ordinary)).To(Succeed())
}

// The operator compares a stored policy with the shipped one after
// DefaultPolicySpec: it must set what this API server sets, for every field
// a policy file might leave out.
func TestDefaultPolicySpecIsTheAPIServers(t *testing.T) {
	g := NewWithT(t)
	rule := admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "defaults-probe"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules:        []admissionregistrationv1.NamedRuleWithOperations{rule},
				ExcludeResourceRules: []admissionregistrationv1.NamedRuleWithOperations{rule},
			},
			MatchConditions:  []admissionregistrationv1.MatchCondition{{Name: "always", Expression: "true"}},
			Variables:        []admissionregistrationv1.Variable{{Name: "v", Expression: "1"}},
			Validations:      []admissionregistrationv1.Validation{{Expression: "true"}},
			AuditAnnotations: []admissionregistrationv1.AuditAnnotation{{Key: "a", ValueExpression: "'x'"}},
		},
	}
	want := policy.Spec.DeepCopy()
	controllers.DefaultPolicySpec(want)
	g.Expect(k.Create(context.Background(), policy, client.DryRunAll)).To(Succeed())
	g.Expect(policy.Spec).To(Equal(*want))
}
