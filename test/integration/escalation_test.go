package integration

import (
	"context"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
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

// escalationRule names the admission policy in every refusal it gives.
const escalationRule = "aws-auth-guardian-prevent-escalation"

// escalationSetup installs config/rbac and config/policy as shipped and
// waits until the policy refuses a privileged mapping to a mapping
// editor, whose client it returns.
func escalationSetup(t *testing.T) client.Client {
	t.Helper()
	resetCluster(t)
	applyConfig(t, "config/rbac")
	protect(t)
	editor, _ := userClient(t, "carol")
	bindClusterRole(t, "carol", "aws-auth-guardian-mapping-editor")
	// The policy loads asynchronously: wait until it answers.
	NewWithT(t).Eventually(func() error {
		return editor.Create(context.Background(), role("probe", "arn:aws:iam::111122223333:role/probe", "system:masters"), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring(escalationRule)))
	return editor
}

// setPrivilegedNames writes the policy's parameter, as a cluster admin,
// and waits until the policy reads it: probe must then be refused.
func setPrivilegedNames(t *testing.T, editor client.Client, data map[string]string, probe *iamv1alpha1.IAMIdentityMapping, refusal string) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	params := &corev1.ConfigMap{}
	g.Expect(k.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "aws-auth-guardian-privileged-groups"}, params)).To(Succeed())
	params.Data = data
	g.Expect(k.Update(ctx, params)).To(Succeed())
	g.Eventually(func() error {
		return editor.Create(ctx, probe.DeepCopy(), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring(refusal)))
}

// privilegedMappings are specs that can make someone a cluster admin (or
// any identity they choose) once the authenticator has expanded them: each
// class of the policy with several instances, named by what they try.
func privilegedMappings() map[string]*iamv1alpha1.IAMIdentityMapping {
	arn := func(name string) string { return "arn:aws:iam::111122223333:role/" + name }
	withName := func(name, username string, groups ...string) *iamv1alpha1.IAMIdentityMapping {
		return mapping(name, withARN(arn(name)), withUsername(username), withGroups(groups...))
	}
	return map[string]*iamv1alpha1.IAMIdentityMapping{
		"group system:masters":                       withName("masters", "a:x", "viewers", "system:masters"),
		"group system:nodes":                         withName("nodes", "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		"group system:authenticated":                 withName("authenticated", "a:x", "system:authenticated"),
		"group eks:":                                 withName("eks-group", "a:x", "eks:cluster-admins"),
		"the break-glass group":                      withName("break-glass", "a:x", "aws-auth-guardian:break-glass"),
		"group system:{{SessionName}}":               withName("tmpl-system", "a:x", "system:{{SessionName}}"),
		"group platform:{{SessionName}}":             withName("tmpl-platform", "a:x", "platform:{{SessionName}}"),
		"group {{SessionNameRaw}}":                   withName("tmpl-raw", "a:x", "{{SessionNameRaw}}"),
		"group with {{AccountID}}":                   withName("tmpl-account", "a:x", "team-{{AccountID}}"),
		"group aws-auth-guardian:{{AccessKeyID}}":    withName("tmpl-key", "a:x", "aws-auth-guardian:{{AccessKeyID}}"),
		"username system:kube-controller-manager":    withName("kcm", "system:kube-controller-manager"),
		"username of a service account":              withName("sa", "system:serviceaccount:kube-system:clusterrole-aggregation-controller"),
		"username system:{{SessionName}}":            withName("user-tmpl", "system:{{SessionName}}"),
		"username system:node:{{EC2PrivateDNSName}}": withName("node-user", "system:node:{{EC2PrivateDNSName}}"),
		"username system:{{AccountID}}":              withName("user-account", "system:{{AccountID}}"),
		"username eks:":                              withName("eks-user", "eks:addon-manager"),
		"username aws:":                              withName("aws-user", "aws:root"),
		"username amazon:":                           withName("amazon-user", "amazon:x"),
		"username iam:":                              withName("iam-user", "iam:x"),
		"an accountID mapping":                       mapping("account", withAccount("444455556666")),
	}
}

func TestMappingEditorsCannotMakeAnyoneClusterAdmin(t *testing.T) {
	editor := escalationSetup(t)
	admin, _ := userClient(t, "alice") // cluster-admin by RBAC, not in system:masters
	bindClusterRole(t, "alice", "cluster-admin")
	breakGlass, _ := userClient(t, "dave", breakGlassGroup)
	bindClusterRole(t, "dave", "aws-auth-guardian-mapping-editor")
	ctx := context.Background()

	for what, m := range privilegedMappings() {
		t.Run("an editor cannot create a mapping with "+what, func(t *testing.T) {
			err := editor.Create(ctx, m.DeepCopy())
			expectForbidden(NewWithT(t), err, "is privileged")
			NewWithT(t).Expect(err.Error()).To(ContainSubstring("verb escalate on iamidentitymappings.iam.aws-auth-guardian.dev"))
		})
		t.Run("a cluster admin without system:masters can create a mapping with "+what, func(t *testing.T) {
			NewWithT(t).Expect(admin.Create(ctx, m.DeepCopy(), client.DryRunAll)).To(Succeed())
		})
		t.Run("break-glass can create a mapping with "+what, func(t *testing.T) {
			NewWithT(t).Expect(breakGlass.Create(ctx, m.DeepCopy(), client.DryRunAll)).To(Succeed())
		})
	}

	t.Run("the refusal names the field, the value and what to ask for", func(t *testing.T) {
		err := editor.Create(ctx, mapping("x", withARN("arn:aws:iam::111122223333:role/x"), withUsername("a:x"), withGroups("viewers", "system:{{SessionName}}")))
		expectForbidden(NewWithT(t), err, "IAMIdentityMapping x is privileged: spec.groups system:{{SessionName}} has a template, which whoever assumes the role expands into a group of their choosing")
		NewWithT(t).Expect(err.Error()).To(ContainSubstring("rule " + escalationRule + "). Ask a cluster administrator to apply it, or to grant you escalate (ClusterRole aws-auth-guardian-escalate)"))
	})

	ordinary := func() *iamv1alpha1.IAMIdentityMapping {
		return mapping("viewers", withARN("arn:aws:iam::111122223333:role/viewers"), withUsername("team:{{SessionName}}"), withGroups("viewers", "platform:devs"))
	}
	t.Run("an editor can create, change and delete an ordinary mapping", func(t *testing.T) {
		g := NewWithT(t)
		m := ordinary()
		g.Expect(editor.Create(ctx, m)).To(Succeed())
		m.Spec.Groups = append(m.Spec.Groups, "readers")
		g.Expect(editor.Update(ctx, m)).To(Succeed())
		g.Expect(editor.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"username":"team:{{SessionNameRaw}}"}}`)))).To(Succeed())
		g.Expect(editor.Delete(ctx, m)).To(Succeed())
	})

	// Every verb that can make an ordinary mapping privileged.
	escalations := map[string]func(m *iamv1alpha1.IAMIdentityMapping) error{
		"update adding system:masters": func(m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.Groups = append(m.Spec.Groups, "system:masters")
			return editor.Update(ctx, m)
		},
		"merge patch of a reserved username": func(m *iamv1alpha1.IAMIdentityMapping) error {
			return editor.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"username":"system:kube-controller-manager"}}`)))
		},
		"JSON patch adding a templated group": func(m *iamv1alpha1.IAMIdentityMapping) error {
			return editor.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/groups/-","value":"system:{{SessionName}}"}]`)))
		},
		"server-side apply of the break-glass group": func(m *iamv1alpha1.IAMIdentityMapping) error {
			apply := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": iamv1alpha1.GroupVersion.String(), "kind": "IAMIdentityMapping",
				"metadata": map[string]any{"name": m.Name},
				"spec":     map[string]any{"arn": m.Spec.ARN, "username": "team:x", "groups": []any{breakGlassGroup}},
			}}
			return editor.Apply(ctx, client.ApplyConfigurationFromUnstructured(apply), client.FieldOwner("attacker"), client.ForceOwnership)
		},
		"update turning it into an account mapping": func(m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec = iamv1alpha1.IAMIdentityMappingSpec{AccountID: "444455556666"}
			return editor.Update(ctx, m)
		},
	}
	for what, escalate := range escalations {
		t.Run("an editor cannot escalate an ordinary mapping by "+what, func(t *testing.T) {
			g := NewWithT(t)
			m := ordinary()
			g.Expect(editor.Create(ctx, m)).To(Succeed())
			t.Cleanup(func() { forceDelete(NewWithT(t), m) })
			expectForbidden(g, escalate(m), "is privileged")
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
			g.Expect(m.Spec).To(Equal(ordinary().Spec))
		})
	}

	t.Run("an editor can neither change nor re-point nor delete a privileged mapping", func(t *testing.T) {
		g := NewWithT(t)
		admins := role("admins", adminARN, "system:masters")
		g.Expect(admin.Create(ctx, admins)).To(Succeed())
		t.Cleanup(func() { forceDelete(NewWithT(t), admins) })
		nodes := mapping("nodes", withARN(nodeRoleARN), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes"))
		g.Expect(admin.Create(ctx, nodes)).To(Succeed())
		t.Cleanup(func() { forceDelete(NewWithT(t), nodes) })

		repointed := admins.DeepCopy()
		repointed.Spec.ARN = "arn:aws:iam::111122223333:role/attacker"
		expectForbidden(g, editor.Update(ctx, repointed), "IAMIdentityMapping admins is privileged: spec.groups system:masters is a reserved or privileged group")
		// Dropping the privileged group still changes a privileged mapping.
		demoted := admins.DeepCopy()
		demoted.Spec.Groups = []iamv1alpha1.IdentityName{"viewers"}
		expectForbidden(g, editor.Update(ctx, demoted), "is privileged")
		expectForbidden(g, editor.Delete(ctx, admins), "To delete a privileged mapping you need the verb escalate")
		expectForbidden(g, editor.Delete(ctx, nodes), "spec.groups system:nodes")
		g.Expect(editor.DeleteAllOf(ctx, &iamv1alpha1.IAMIdentityMapping{})).NotTo(Succeed())
		for _, m := range []*iamv1alpha1.IAMIdentityMapping{admins, nodes} {
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.DeletionTimestamp).To(BeNil(), "%s is being deleted", m.Name)
			g.Expect(live.Spec).To(Equal(m.Spec))
		}

		// Metadata is not access: Argo CD's tracking label, say.
		labelled := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(k.Get(ctx, client.ObjectKeyFromObject(admins), labelled)).To(Succeed())
		labelled.Labels = map[string]string{"argocd.argoproj.io/instance": "access"}
		g.Expect(editor.Update(ctx, labelled)).To(Succeed())

		g.Expect(admin.Delete(ctx, admins)).To(Succeed())
	})
}

func TestUsernamesTheAssumerControlsAreRefused(t *testing.T) {
	resetCluster(t)
	ctx := context.Background()
	for _, username := range []string{"{{SessionName}}", "{{SessionName}}:x", "{{SessionNameRaw}}", "x{{SessionName}}", "{{AccessKeyID}}-x", "{{AccountID}}{{SessionName}}"} {
		t.Run(username, func(t *testing.T) {
			m := mapping("assumer-chooses", withARN("arn:aws:iam::111122223333:role/r"), withUsername(username))
			// Refused by the schema, for everyone: k is in system:masters.
			expectForbidden(NewWithT(t), k.Create(ctx, m, client.DryRunAll), "username must start with a fixed prefix that ends in ':' before its first template, such as team:{{SessionName}}")
		})
	}
	for _, username := range []string{"team:{{SessionName}}", "{{AccountID}}:{{SessionName}}", "a:b:{{SessionNameRaw}}", "plain"} {
		t.Run(username, func(t *testing.T) {
			m := mapping("assumer-chooses", withARN("arn:aws:iam::111122223333:role/r"), withUsername(username))
			NewWithT(t).Expect(k.Create(ctx, m, client.DryRunAll)).To(Succeed())
		})
	}
}

func TestPrivilegedNamesParameter(t *testing.T) {
	editor := escalationSetup(t)
	ctx := context.Background()
	withGroup := func(group string) *iamv1alpha1.IAMIdentityMapping {
		return mapping("p", withARN("arn:aws:iam::111122223333:role/p"), withUsername("team:x"), withGroups(group))
	}
	withUser := func(username string) *iamv1alpha1.IAMIdentityMapping {
		return mapping("p", withARN("arn:aws:iam::111122223333:role/p"), withUsername(username))
	}

	t.Run("names separated by commas, spaces and newlines, and prefixes", func(t *testing.T) {
		setPrivilegedNames(t, editor, map[string]string{
			"groups":    "platform:admins,eks-console-admins\nops:*  \tdb-admins",
			"usernames": "root:admin\nbreakglass-*",
		}, withGroup("db-admins"), "spec.groups db-admins is a reserved or privileged group")
		for _, m := range []*iamv1alpha1.IAMIdentityMapping{
			withGroup("platform:admins"), withGroup("eks-console-admins"), withGroup("ops:root"), withGroup("db-admins"),
			withUser("root:admin"), withUser("breakglass-joe"),
			// The fixed part could be completed into a listed name.
			withUser("root:{{SessionName}}"), withUser("breakglass-x:{{SessionName}}"),
		} {
			expectForbidden(NewWithT(t), editor.Create(ctx, m, client.DryRunAll), "is privileged")
		}
		for _, m := range []*iamv1alpha1.IAMIdentityMapping{withGroup("platform:devs"), withGroup("ops"), withUser("root:adminx"), withUser("team:{{SessionName}}")} {
			NewWithT(t).Expect(editor.Create(ctx, m, client.DryRunAll)).To(Succeed(), "%s %v", m.Spec.Username, m.Spec.Groups)
		}
	})
	t.Run("an unknown key fails closed", func(t *testing.T) {
		setPrivilegedNames(t, editor, map[string]string{"group": "platform:admins"}, withGroup("viewers"),
			"may hold only the keys groups and usernames, and has group: no mapping can be written until it is fixed")
	})
	t.Run("a list written as YAML fails closed", func(t *testing.T) {
		setPrivilegedNames(t, editor, map[string]string{"groups": `["platform:admins", "eks-console-admins"]`}, withGroup("viewers"),
			"has a malformed name")
	})
	t.Run("only those who may escalate change it", func(t *testing.T) {
		g := NewWithT(t)
		// carol may edit anything in the operator's namespace.
		nsEditor := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "configmap-editor"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}}},
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "carol-configmap-editor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: nsEditor.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "carol"}},
		}
		create(t, nsEditor, binding)
		t.Cleanup(func() { _ = k.Delete(ctx, binding); _ = k.Delete(ctx, nsEditor) })
		params := &corev1.ConfigMap{}
		g.Eventually(func(g Gomega) {
			g.Expect(editor.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "aws-auth-guardian-privileged-groups"}, params)).To(Succeed())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		params.Data = map[string]string{"groups": ""}
		// The API server loads each admission policy on its own, so this
		// one may come into force after the one escalationSetup waited for:
		// wait, without changing anything, until it denies.
		g.Eventually(func(g Gomega) {
			expectForbidden(g, editor.Update(ctx, params.DeepCopy(), client.DryRunAll), "only they may update it")
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		expectForbidden(g, editor.Update(ctx, params), "only they may update it")
		expectForbidden(g, editor.Delete(ctx, params), "only they may delete it")
		g.Expect(editor.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(operatorNamespace))).NotTo(Succeed())
		g.Expect(k.Get(ctx, client.ObjectKeyFromObject(params), &corev1.ConfigMap{})).To(Succeed())
		// Nor may she forge the backup a missing aws-auth is restored from.
		backup := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: managed.BackupName},
			Data: map[string]string{"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/x\n  username: x\n  groups: [system:masters]\n"}}
		expectForbidden(g, editor.Create(ctx, backup), "aws-auth-guardian-system/aws-auth-backup is written by aws-auth-guardian alone")
		// system:masters may change the parameter, but not the backup.
		g.Expect(k.Update(ctx, params)).To(Succeed())
		expectForbidden(g, k.Create(ctx, backup.DeepCopy()), "is written by aws-auth-guardian alone")
	})
}

func TestOperatorMayOnlyAdoptPrivilegedMappings(t *testing.T) {
	escalationSetup(t)
	operatorClient, _ := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	ctx := context.Background()
	g := NewWithT(t)
	admins := role("admins", adminARN, "system:masters")
	expectForbidden(g, operatorClient.Create(ctx, admins.DeepCopy(), client.DryRunAll), "is privileged")
	adopted := admins.DeepCopy()
	adopted.Labels = map[string]string{"iam.aws-auth-guardian.dev/adopted": "true"}
	g.Expect(operatorClient.Create(ctx, adopted)).To(Succeed())
	t.Cleanup(func() { forceDelete(NewWithT(t), adopted) })
	// Its finalizer changes pass; a change of spec does not.
	controllerutil.AddFinalizer(adopted, iamv1alpha1.ProtectionFinalizer)
	g.Expect(operatorClient.Update(ctx, adopted)).To(Succeed())
	adopted.Spec.Groups = []iamv1alpha1.IdentityName{"system:masters", "viewers"}
	expectForbidden(g, operatorClient.Update(ctx, adopted), "is privileged")
}

func TestOnlyTheOperatorChangesFinalizersOfAWSAuth(t *testing.T) {
	resetCluster(t)
	breakGlass, _ := userClient(t, "bob", "system:masters", breakGlassGroup)
	admin, _ := userClient(t, "alice", "system:masters")
	ctx := context.Background()
	g := NewWithT(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth", Finalizers: []string{iamv1alpha1.ProtectionFinalizer}}}
	g.Expect(breakGlass.Create(ctx, cm)).To(Succeed())
	// Registered first, so it runs once the policies are gone.
	t.Cleanup(func() { forceDelete(NewWithT(t), cm) })
	protect(t)

	withFinalizers := func(finalizers ...string) error {
		live := getAWSAuth(g)
		live.Finalizers = finalizers
		return admin.Update(ctx, live)
	}
	expectForbidden(g, withFinalizers(iamv1alpha1.ProtectionFinalizer, "example.com/hold"), "no finalizer may be added or removed")
	expectForbidden(g, withFinalizers(), "no finalizer may be added or removed")
	expectForbidden(g, admin.Patch(ctx, getAWSAuth(g), client.RawPatch(types.JSONPatchType, []byte(`[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/hold"}]`))), "no finalizer may be added or removed")
	live := getAWSAuth(g)
	live.Annotations = map[string]string{"team": "platform"}
	g.Expect(admin.Update(ctx, live)).To(Succeed())
	g.Expect(getAWSAuth(g).Finalizers).To(Equal([]string{iamv1alpha1.ProtectionFinalizer}))
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
	startWithMappings(t, managed.Immutable)
	g := NewWithT(t)
	g.Eventually(func(g Gomega) float64 {
		return metricValue(g, "aws_auth_guardian_system_masters_mappings", nil)
	}).WithTimeout(timeout).WithPolling(interval).Should(Equal(1.0))
}

// TestMassDeleteByAnEditorLocksNobodyOut: an editor who deletes every
// mapping (kubectl delete iim --all) revokes the ordinary ones and none
// that admins or nodes need.
func TestMassDeleteByAnEditorLocksNobodyOut(t *testing.T) {
	editor := escalationSetup(t)
	_, operatorConfig := userClient(t, operatorUser, "system:serviceaccounts", "system:serviceaccounts:aws-auth-guardian-system")
	runOperatorAs(t, operatorConfig, managed.Immutable)
	create(t, baseMappings()...)
	ctx := context.Background()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal(baseEntries))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

	var list iamv1alpha1.IAMIdentityMappingList
	g.Expect(editor.List(ctx, &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(4))
	var refused []string
	for i := range list.Items {
		if err := editor.Delete(ctx, &list.Items[i]); err != nil {
			expectForbidden(g, err, "is privileged")
			refused = append(refused, list.Items[i].Name)
		}
	}
	g.Expect(refused).To(ConsistOf("admins", "nodes", "partner"))
	// jane's entry, the one revocation, is applied; nothing else moves.
	g.Eventually(func(g Gomega) {
		g.Expect(liveEntries(g)).To(Equal([]awsauth.Entry{baseEntries[0], baseEntries[1], baseEntries[3]}))
		expectReady(g, "admins", "nodes", "partner")
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}
