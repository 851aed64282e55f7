package deploy

import (
	"context"
	"fmt"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// Names that other tools and the policies rely on: fixed, never derived.
const (
	defaultNamespace   = "aws-auth-guardian-system"
	serviceAccountName = "aws-auth-guardian-controller-manager"
	deploymentName     = "aws-auth-guardian-controller-manager"
	metricsServiceName = "aws-auth-guardian-controller-manager-metrics"
	managerRoleName    = "aws-auth-guardian-manager"
	leaderElectionRole = "aws-auth-guardian-leader-election"
)

// crdName is the IAMIdentityMapping CRD's, from the API package.
var crdName = "iamidentitymappings." + iamv1alpha1.GroupVersion.Group

var policyNames = []string{
	"aws-auth-guardian-protect-aws-auth",
	"aws-auth-guardian-protect-crd",
	"aws-auth-guardian-operator-creates",
	"aws-auth-guardian-prevent-escalation",
	"aws-auth-guardian-protect-operator-configmaps",
}

// The policies of the optional components, config/components/*.
const (
	protectRBACPolicy              = "aws-auth-guardian-protect-rbac"
	protectOperatorNamespacePolicy = "aws-auth-guardian-protect-operator-namespace"
)

var componentPolicies = []string{protectRBACPolicy, protectOperatorNamespacePolicy}

// requiredRefs are objects every install of the operator into namespace
// ns has, whatever else config/ adds.
func requiredRefs(ns string, components bool) []ref {
	refs := []ref{
		{"CustomResourceDefinition", "", crdName},
		{"ServiceAccount", ns, serviceAccountName},
		{"ClusterRole", "", managerRoleName},
		{"ClusterRoleBinding", "", managerRoleName},
		// The Role on aws-auth stays next to it, whatever ns is.
		{"Role", "kube-system", managerRoleName},
		{"RoleBinding", "kube-system", managerRoleName},
		{"Role", ns, managerRoleName},
		{"RoleBinding", ns, managerRoleName},
		{"Role", ns, leaderElectionRole},
		{"RoleBinding", ns, leaderElectionRole},
		{"Deployment", ns, deploymentName},
		{"PodDisruptionBudget", ns, deploymentName},
		{"Service", ns, metricsServiceName},
		{"ClusterRole", "", "aws-auth-guardian-metrics-reader"},
	}
	names := policyNames
	if components {
		names = slices.Concat(names, componentPolicies)
	}
	for _, n := range names {
		refs = append(refs, ref{"ValidatingAdmissionPolicy", "", n}, ref{"ValidatingAdmissionPolicyBinding", "", n})
	}
	return refs
}

// checkNamespaces checks that an install into ns puts every namespaced
// object into ns, but the Role and RoleBinding on aws-auth, which must be
// in kube-system; and that no namespaced object lacks its namespace (it
// would land wherever the installer happens to point).
func checkNamespaces(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	g := NewWithT(t)
	for _, o := range objs {
		namespaced, err := k.IsObjectNamespaced(o)
		g.Expect(err).NotTo(HaveOccurred(), "%s", refOf(o))
		if !namespaced {
			g.Expect(o.GetNamespace()).To(BeEmpty(), "%s is cluster-scoped", refOf(o))
			continue
		}
		onAWSAuth := (o.GetKind() == "Role" || o.GetKind() == "RoleBinding") && o.GetName() == managerRoleName
		if o.GetNamespace() == "kube-system" && onAWSAuth {
			continue
		}
		g.Expect(o.GetNamespace()).To(Equal(ns), "%s is not in the operator's namespace", refOf(o))
	}
}

// checkOperator checks the workload of an install into ns: what keeps
// aws-auth guarded (two replicas, leader election, a disruption budget),
// the restricted pod security, the metrics Service, and that every binding
// names the operator's service account in ns.
func checkOperator(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	g := NewWithT(t)

	dep := typed[appsv1.Deployment](t, find(t, objs, ref{"Deployment", ns, deploymentName}))
	g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	g.Expect(dep.Spec.Selector).NotTo(BeNil())
	podLabels := labels.Set(dep.Spec.Template.Labels)
	selects := func(what string, sel map[string]string) {
		g.Expect(sel).NotTo(BeEmpty(), "%s selects nothing", what)
		g.Expect(labels.SelectorFromSet(sel).Matches(podLabels)).To(BeTrue(), "%s %v does not select the manager pods %v", what, sel, podLabels)
	}
	selects("the Deployment's selector", dep.Spec.Selector.MatchLabels)

	pod := dep.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal(serviceAccountName))
	g.Expect(pod.SecurityContext).NotTo(BeNil())
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Args).To(ContainElements("--leader-elect", "--metrics-bind-address=:8443"))
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--metrics-secure")), "the metrics are served over HTTPS, the default")
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{
		Name:      "POD_NAMESPACE",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
	}))
	g.Expect(c.SecurityContext).NotTo(BeNil())
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.Capabilities).To(HaveValue(HaveField("Drop", ConsistOf(corev1.Capability("ALL")))))
	g.Expect(c.LivenessProbe).NotTo(BeNil())
	g.Expect(c.ReadinessProbe).NotTo(BeNil())
	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))

	pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, ref{"PodDisruptionBudget", ns, deploymentName}))
	g.Expect(pdb.Spec.MinAvailable).To(HaveValue(Equal(intstr.FromInt32(1))))
	g.Expect(pdb.Spec.Selector).NotTo(BeNil())
	selects("the PodDisruptionBudget", pdb.Spec.Selector.MatchLabels)

	svc := typed[corev1.Service](t, find(t, objs, ref{"Service", ns, metricsServiceName}))
	selects("the metrics Service", svc.Spec.Selector)
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(
		HaveField("Name", "https"),
		HaveField("Port", BeEquivalentTo(8443)),
		HaveField("TargetPort", Equal(intstr.FromString("https"))),
	)))
	g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "https"), HaveField("ContainerPort", BeEquivalentTo(8443)))),
		"the Service's target port names no container port")

	// Every binding is the operator's, but the one that gives the
	// break-glass group the escalate verb.
	operator := rbacv1.Subject{Kind: "ServiceAccount", Name: serviceAccountName, Namespace: ns}
	breakGlass := rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "aws-auth-guardian:break-glass"}
	for _, o := range objs {
		switch o.GetKind() {
		case "RoleBinding":
			g.Expect(typed[rbacv1.RoleBinding](t, o).Subjects).To(ConsistOf(operator), "%s", refOf(o))
		case "ClusterRoleBinding":
			binding := typed[rbacv1.ClusterRoleBinding](t, o)
			if binding.RoleRef.Name == "aws-auth-guardian-escalate" {
				g.Expect(binding.Subjects).To(ConsistOf(breakGlass), "%s", refOf(o))
				continue
			}
			g.Expect(binding.Subjects).To(ConsistOf(operator), "%s", refOf(o))
		}
	}

	crd := typed[apiextensionsv1.CustomResourceDefinition](t, find(t, objs, ref{"CustomResourceDefinition", "", crdName}))
	g.Expect(crd.Spec.Scope).To(Equal(apiextensionsv1.ClusterScoped))
}

// operatorUsername is how the API server names the operator installed in ns.
func operatorUsername(ns string) string {
	return fmt.Sprintf("system:serviceaccount:%s:%s", ns, serviceAccountName)
}

// expectPoliciesEnforced proves that the applied admission policies are
// live and name the operator of namespace ns: as that operator, creating
// any ConfigMap in kube-system but aws-auth is refused by the policy (its
// RBAC alone would allow it), while aws-auth and ns/aws-auth-backup are
// allowed; an administrator may neither create aws-auth nor delete the CRD.
// All requests are dry runs: nothing is left behind.
func expectPoliciesEnforced(t *testing.T, ns string, components bool) {
	t.Helper()
	ctx := context.Background()
	asOperator := rest.CopyConfig(cfg)
	asOperator.Impersonate = rest.ImpersonationConfig{
		UserName: operatorUsername(ns),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	op, err := client.New(asOperator, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	configMap := func(ns, name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	refused := func(message string) OmegaMatcher {
		return And(WithTransform(apierrors.IsForbidden, BeTrue()), MatchError(ContainSubstring(message)))
	}
	g := NewWithT(t)
	eventually := func(f func() error) AsyncAssertion {
		return g.Eventually(f).WithTimeout(timeout).WithPolling(interval)
	}

	eventually(func() error {
		return op.Create(ctx, configMap("kube-system", "not-aws-auth"), client.DryRunAll)
	}).Should(refused(fmt.Sprintf("aws-auth-guardian may create only kube-system/aws-auth and %s/aws-auth-backup", ns)),
		"the policy aws-auth-guardian-operator-creates does not apply to %s", operatorUsername(ns))
	eventually(func() error {
		return op.Create(ctx, configMap("kube-system", "aws-auth"), client.DryRunAll)
	}).Should(Succeed(), "the operator may not create kube-system/aws-auth")
	eventually(func() error {
		return op.Create(ctx, configMap(ns, "aws-auth-backup"), client.DryRunAll)
	}).Should(Succeed(), "the operator may not create its backup")

	eventually(func() error {
		return k.Create(ctx, configMap("kube-system", "aws-auth"), client.DryRunAll)
	}).Should(refused("kube-system/aws-auth is managed by aws-auth-guardian"))
	eventually(func() error {
		return k.Create(ctx, configMap(ns, "aws-auth-backup"), client.DryRunAll)
	}).Should(refused(fmt.Sprintf("%s/aws-auth-backup is written by aws-auth-guardian alone", ns)))
	eventually(func() error {
		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: crdName}}
		return k.Delete(ctx, crd, client.DryRunAll)
	}).Should(refused("Deleting the IAMIdentityMapping CRD"))

	if components {
		eventually(func() error {
			return k.Delete(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"}}, client.DryRunAll)
		}).Should(refused("is critical to the cluster and is protected by aws-auth-guardian"))
		token := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token", Annotations: map[string]string{"kubernetes.io/service-account.name": serviceAccountName}},
			Type:       corev1.SecretTypeServiceAccountToken,
		}
		// A member of system:masters, not of break-glass.
		eventually(func() error {
			return k.Create(ctx, token, client.DryRunAll)
		}).Should(refused(fmt.Sprintf("A token Secret for %s/%s", ns, serviceAccountName)))
	}
}
