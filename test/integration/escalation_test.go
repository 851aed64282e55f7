package integration

import (
	"context"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
)

// bindClusterRole gives user the ClusterRole, cluster-wide, until the test ends.
func bindClusterRole(t *testing.T, user, role string) {
	t.Helper()
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	create(t, binding)
	t.Cleanup(func() { _ = k.Delete(context.Background(), binding) })
}

func TestMappingEditorsCannotGrantClusterAdmin(t *testing.T) {
	resetCluster(t)
	applyConfig(t, "config/rbac")
	protect(t)
	editor, _ := userClient(t, "carol")
	bindClusterRole(t, "carol", "aws-auth-guardian-mapping-editor")
	masters, _ := userClient(t, "alice", "system:masters")
	breakGlass, _ := userClient(t, "dave", breakGlassGroup)
	bindClusterRole(t, "dave", "aws-auth-guardian-mapping-editor")
	ctx := context.Background()
	g := NewWithT(t)

	// The policy loads asynchronously: wait until it answers.
	g.Eventually(func() error {
		return editor.Create(ctx, role("probe", "arn:aws:iam::111122223333:role/probe", "system:masters"), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("aws-auth-guardian-prevent-escalation")))

	t.Run("an editor cannot grant system:masters, and is told why", func(t *testing.T) {
		err := editor.Create(ctx, role("escalate", "arn:aws:iam::111122223333:role/escalate", "viewers", "system:masters"))
		expectForbidden(NewWithT(t), err, "grants the privileged group system:masters, which makes its IAM identity a cluster administrator")
	})
	t.Run("an editor can create an ordinary mapping", func(t *testing.T) {
		NewWithT(t).Expect(editor.Create(ctx, role("viewers", "arn:aws:iam::111122223333:role/viewers", "viewers"))).To(Succeed())
	})
	t.Run("an editor cannot add system:masters to an existing mapping", func(t *testing.T) {
		g := NewWithT(t)
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(editor.Get(ctx, client.ObjectKey{Name: "viewers"}, m)).To(Succeed())
		m.Spec.Groups = append(m.Spec.Groups, "system:masters")
		expectForbidden(g, editor.Update(ctx, m), "aws-auth-guardian-prevent-escalation")
	})
	t.Run("system:masters can", func(t *testing.T) {
		NewWithT(t).Expect(masters.Create(ctx, role("admins", adminARN, "system:masters"))).To(Succeed())
	})
	t.Run("break-glass can", func(t *testing.T) {
		NewWithT(t).Expect(breakGlass.Create(ctx, role("emergency", "arn:aws:iam::111122223333:role/emergency", "system:masters"))).To(Succeed())
	})
	t.Run("groups the cluster owner lists are privileged too", func(t *testing.T) {
		g := NewWithT(t)
		params := &corev1.ConfigMap{}
		g.Expect(k.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "aws-auth-guardian-privileged-groups"}, params)).To(Succeed())
		params.Data = map[string]string{"groups": "platform:admins, eks-console-admins"}
		g.Expect(k.Update(ctx, params)).To(Succeed())
		g.Eventually(func() error {
			return editor.Create(ctx, role("platform", "arn:aws:iam::111122223333:role/platform", "eks-console-admins"), client.DryRunAll)
		}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring("grants the privileged group eks-console-admins")))
	})
}

// TestBuiltInRolesGrantNothingOnMappings: admin, edit and view are
// aggregated roles; their rules are those of every ClusterRole their
// aggregationRule selects. envtest has no controller-manager to fill them
// in, so the test does the aggregation itself, over the roles of
// config/rbac as installed.
func TestBuiltInRolesGrantNothingOnMappings(t *testing.T) {
	applyConfig(t, "config/rbac")
	g := NewWithT(t)
	for _, builtIn := range []string{"admin", "edit", "view"} {
		g.Expect(aggregatedMappingRules(g, builtIn)).To(BeEmpty(), "the built-in %s role would grant rights on iamidentitymappings", builtIn)
	}

	// The check can tell: a role labelled to aggregate into edit is found.
	leaky := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "leaky-mapping-editor", Labels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"iam.aws-auth-guardian.dev"}, Resources: []string{"iamidentitymappings"}, Verbs: []string{"create"}}},
	}
	create(t, leaky)
	t.Cleanup(func() { _ = k.Delete(context.Background(), leaky) })
	g.Expect(aggregatedMappingRules(g, "edit")).To(ContainElement("leaky-mapping-editor"))
}

// aggregatedMappingRules names the ClusterRoles aggregated into builtIn
// that grant anything on iamidentitymappings.
func aggregatedMappingRules(g Gomega, builtIn string) []string {
	ctx := context.Background()
	role := &rbacv1.ClusterRole{}
	g.Expect(k.Get(ctx, client.ObjectKey{Name: builtIn}, role)).To(Succeed())
	g.Expect(role.AggregationRule).NotTo(BeNil(), "%s is no longer an aggregated role", builtIn)
	var found []string
	for _, selector := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&selector)
		g.Expect(err).NotTo(HaveOccurred())
		var roles rbacv1.ClusterRoleList
		g.Expect(k.List(ctx, &roles, client.MatchingLabelsSelector{Selector: s})).To(Succeed())
		for _, r := range roles.Items {
			for _, rule := range r.Rules {
				group := slices.Contains(rule.APIGroups, "iam.aws-auth-guardian.dev") || slices.Contains(rule.APIGroups, "*")
				resource := slices.Contains(rule.Resources, "iamidentitymappings") || slices.Contains(rule.Resources, "*")
				if group && resource {
					found = append(found, r.Name)
				}
			}
		}
	}
	return found
}

func TestOperatorCountsSystemMastersMappings(t *testing.T) {
	startWithMappings(t, controllers.Immutable)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) float64 {
		return metricValue(g, "aws_auth_guardian_system_masters_mappings", nil)
	}).WithTimeout(timeout).WithPolling(interval).Should(Equal(1.0))
}
