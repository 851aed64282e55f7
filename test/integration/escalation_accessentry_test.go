package integration

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// Access policies and node access entry types grant Kubernetes permissions
// through EKS itself, outside RBAC: a mapping editor who could write them
// could make anyone cluster-admin without escalate. These tests try, as
// the mapping editor would, every write that could.

// accessEntryRefusal is what the policy says of a refused access policy or
// node type, after "spec.accessPolicies <policy> <scope>" or
// "spec.accessEntryType <type>".
const (
	accessPolicyRefusal = " is an EKS access policy, which grants Kubernetes permissions to the access entry directly, outside RBAC"
	nodeTypeRefusal     = " is a node access entry type, for which EKS itself gives the role the node identity (group system:nodes) and its permissions"
	askForEscalate      = "you need the verb escalate on iamidentitymappings.iam.aws-auth-guardian.dev (rule " + escalationRule +
		"). Ask a cluster administrator to apply it, or to grant you escalate (ClusterRole aws-auth-guardian-escalate)."
)

// accessEntrySetup is escalationSetup plus a second mapping editor, erin,
// who also holds aws-auth-guardian-escalate, the role the refusals name.
func accessEntrySetup(t *testing.T) (editor, holder client.Client) {
	t.Helper()
	editor = escalationSetup(t)
	holder, _ = userClient(t, "erin")
	bindClusterRole(t, "erin", "aws-auth-guardian-mapping-editor")
	bindClusterRole(t, "erin", "aws-auth-guardian-escalate")
	// RBAC caches are per API server and fill at once, but say so rather
	// than assume it: the holder passes the probe the editor is refused.
	NewWithT(t).Eventually(func() error {
		return holder.Create(context.Background(), role("probe", "arn:aws:iam::111122223333:role/probe", "system:masters"), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return editor, holder
}

func withAccessPolicies(policies ...iamv1alpha1.AccessPolicy) func(*iamv1alpha1.IAMIdentityMapping) {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.AccessPolicies = policies }
}

func withAccessEntryType(t iamv1alpha1.AccessEntryType) func(*iamv1alpha1.IAMIdentityMapping) {
	return func(m *iamv1alpha1.IAMIdentityMapping) { m.Spec.AccessEntryType = t }
}

func accessPolicy(policy string, namespaces ...iamv1alpha1.AccessPolicyNamespace) iamv1alpha1.AccessPolicy {
	return iamv1alpha1.AccessPolicy{Policy: policy, Namespaces: namespaces}
}

// ordinaryTeam is a mapping an editor may write: a team's role with
// groups bound to ordinary roles. Everything an attacker adds to it below
// is the only privileged part.
func ordinaryTeam(name string, opts ...func(*iamv1alpha1.IAMIdentityMapping)) *iamv1alpha1.IAMIdentityMapping {
	m := mapping(name, withARN("arn:aws:iam::111122223333:role/"+name), withUsername("team:{{SessionName}}"), withGroups("viewers", "platform:devs"))
	for _, o := range opts {
		o(m)
	}
	return m
}

func TestEditorsCannotCreateAccessEntryGrants(t *testing.T) {
	editor, holder := accessEntrySetup(t)
	ctx := context.Background()

	type attempt struct {
		mapping *iamv1alpha1.IAMIdentityMapping
		reason  string // after "IAMIdentityMapping <name> is privileged: "
	}
	attempts := map[string]attempt{
		"AmazonEKSClusterAdminPolicy by name": {
			ordinaryTeam("admin-by-name", withAccessPolicies(accessPolicy("AmazonEKSClusterAdminPolicy"))),
			"spec.accessPolicies AmazonEKSClusterAdminPolicy on the whole cluster" + accessPolicyRefusal,
		},
		"namespaced AmazonEKSAdminPolicy": {
			ordinaryTeam("admin-namespaced", withAccessPolicies(accessPolicy("AmazonEKSAdminPolicy", "default", "dev-*"))),
			"spec.accessPolicies AmazonEKSAdminPolicy on namespaces default, dev-*" + accessPolicyRefusal,
		},
		"AmazonEKSViewPolicy": {
			ordinaryTeam("view", withAccessPolicies(accessPolicy("AmazonEKSViewPolicy"))),
			"spec.accessPolicies AmazonEKSViewPolicy on the whole cluster" + accessPolicyRefusal,
		},
		"a harmless policy before the cluster admin one": {
			ordinaryTeam("hidden", withAccessPolicies(accessPolicy("AmazonEKSViewPolicy", "default"), accessPolicy("AmazonEKSClusterAdminPolicy"))),
			"spec.accessPolicies AmazonEKSViewPolicy on namespaces default" + accessPolicyRefusal + "; spec.accessPolicies AmazonEKSClusterAdminPolicy",
		},
	}
	// Every partition the CRD accepts, each with a role of its own
	// partition, as the CRD requires.
	for _, partition := range awsauth.Partitions {
		policyARN := "arn:" + partition + ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
		m := ordinaryTeam("admin-arn-"+partition, withAccessPolicies(accessPolicy(policyARN)))
		m.Spec.ARN = "arn:" + partition + ":iam::111122223333:role/admins"
		attempts["AmazonEKSClusterAdminPolicy by ARN in "+partition] = attempt{m, "spec.accessPolicies " + policyARN + " on the whole cluster" + accessPolicyRefusal}
	}
	// A node type with an ordinary username and no groups: the type alone
	// makes the role a node.
	for _, nodeType := range []iamv1alpha1.AccessEntryType{iamv1alpha1.AccessEntryEC2Linux, iamv1alpha1.AccessEntryHybridLinux, iamv1alpha1.AccessEntryFargateLinux, iamv1alpha1.AccessEntryEC2Windows} {
		m := mapping("node-"+strings.ToLower(strings.ReplaceAll(string(nodeType), "_", "-")), withARN("arn:aws:iam::111122223333:role/workers"), withUsername("team:{{SessionName}}"), withAccessEntryType(nodeType))
		attempts["access entry type "+string(nodeType)] = attempt{m, "spec.accessEntryType " + string(nodeType) + nodeTypeRefusal}
	}

	for what, a := range attempts {
		t.Run("an editor cannot create a mapping with "+what, func(t *testing.T) {
			g := NewWithT(t)
			// Should the write pass, the object must not outlive the test.
			t.Cleanup(func() { forceDelete(NewWithT(t), a.mapping.DeepCopy()) })
			err := editor.Create(ctx, a.mapping.DeepCopy())
			expectForbidden(g, err, "IAMIdentityMapping "+a.mapping.Name+" is privileged: "+a.reason)
			g.Expect(err.Error()).To(ContainSubstring("To create a privileged mapping " + askForEscalate))
		})
		t.Run("an escalate holder can create a mapping with "+what, func(t *testing.T) {
			NewWithT(t).Expect(holder.Create(ctx, a.mapping.DeepCopy(), client.DryRunAll)).To(Succeed())
		})
	}

	// Server-side apply of a new object is a create too.
	for what, spec := range map[string]map[string]any{
		"AmazonEKSClusterAdminPolicy": {"arn": "arn:aws:iam::111122223333:role/applied", "username": "team:x",
			"accessPolicies": []any{map[string]any{"policy": "AmazonEKSClusterAdminPolicy"}}},
		"access entry type EC2_LINUX": {"arn": "arn:aws:iam::111122223333:role/applied", "username": "team:x", "accessEntryType": "EC2_LINUX"},
	} {
		t.Run("an editor cannot server-side apply a new mapping with "+what, func(t *testing.T) {
			g := NewWithT(t)
			t.Cleanup(func() { forceDelete(NewWithT(t), mapping("applied")) })
			expectForbidden(g, applyAs(editor, "attacker", "applied", spec), "IAMIdentityMapping applied is privileged: spec.")
			g.Expect(apierrors.IsNotFound(k.Get(ctx, client.ObjectKey{Name: "applied"}, &iamv1alpha1.IAMIdentityMapping{}))).To(BeTrue(), "the mapping was created")
		})
		t.Run("an escalate holder can server-side apply a new mapping with "+what, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(applyAs(holder, "gitops", "applied", spec)).To(Succeed())
			t.Cleanup(func() { forceDelete(NewWithT(t), mapping("applied")) })
		})
	}

	// What stays the editor's to write: the policy must not refuse more.
	for what, m := range map[string]*iamv1alpha1.IAMIdentityMapping{
		"ordinary groups":            ordinaryTeam("plain"),
		"access entry type STANDARD": ordinaryTeam("standard", withAccessEntryType(iamv1alpha1.AccessEntryStandard)),
		"a user with type STANDARD":  mapping("jane", withARN("arn:aws:iam::111122223333:user/jane"), withUsername("jane"), withAccessEntryType(iamv1alpha1.AccessEntryStandard)),
	} {
		t.Run("an editor can create, change and delete a mapping with "+what, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(editor.Create(ctx, m)).To(Succeed())
			t.Cleanup(func() { forceDelete(NewWithT(t), m) })
			m.Spec.Groups = append(m.Spec.Groups, "readers")
			g.Expect(editor.Update(ctx, m)).To(Succeed())
			g.Expect(editor.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"username":"team:{{SessionNameRaw}}"}}`)))).To(Succeed())
			g.Expect(editor.Delete(ctx, m)).To(Succeed())
		})
	}
}

// applyAs applies spec to the mapping named name, server-side, as owner.
func applyAs(c client.Client, owner, name string, spec map[string]any) error {
	apply := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": iamv1alpha1.GroupVersion.String(), "kind": "IAMIdentityMapping",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
	return c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(apply), client.FieldOwner(owner), client.ForceOwnership)
}

func TestEditorsCannotAddAccessEntryGrants(t *testing.T) {
	editor, holder := accessEntrySetup(t)
	ctx := context.Background()

	// Every verb that can give an ordinary mapping an access policy or a
	// node type, and the reason the refusal must give.
	type escalation struct {
		write  func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error
		reason string
	}
	merge := func(patch string) func(client.Client, *iamv1alpha1.IAMIdentityMapping) error {
		return func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(patch)))
		}
	}
	jsonPatch := func(patch string) func(client.Client, *iamv1alpha1.IAMIdentityMapping) error {
		return func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(patch)))
		}
	}
	apply := func(extra map[string]any) func(client.Client, *iamv1alpha1.IAMIdentityMapping) error {
		return func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			spec := map[string]any{"arn": m.Spec.ARN, "username": string(m.Spec.Username)}
			for k, v := range extra {
				spec[k] = v
			}
			return applyAs(c, "attacker", m.Name, spec)
		}
	}
	escalations := map[string]escalation{
		"update adding AmazonEKSClusterAdminPolicy": {func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.AccessPolicies = []iamv1alpha1.AccessPolicy{accessPolicy("AmazonEKSClusterAdminPolicy")}
			return c.Update(ctx, m)
		}, "spec.accessPolicies AmazonEKSClusterAdminPolicy on the whole cluster" + accessPolicyRefusal},
		"merge patch adding AmazonEKSClusterAdminPolicy by ARN": {
			merge(`{"spec":{"accessPolicies":[{"policy":"arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"}]}}`),
			"spec.accessPolicies arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy on the whole cluster" + accessPolicyRefusal},
		"JSON patch adding namespaced AmazonEKSAdminPolicy": {
			jsonPatch(`[{"op":"add","path":"/spec/accessPolicies","value":[{"policy":"AmazonEKSAdminPolicy","namespaces":["kube-system"]}]}]`),
			"spec.accessPolicies AmazonEKSAdminPolicy on namespaces kube-system" + accessPolicyRefusal},
		"server-side apply of AmazonEKSViewPolicy": {
			apply(map[string]any{"accessPolicies": []any{map[string]any{"policy": "AmazonEKSViewPolicy"}}}),
			"spec.accessPolicies AmazonEKSViewPolicy on the whole cluster" + accessPolicyRefusal},
		"update to EC2_LINUX": {func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.AccessEntryType = iamv1alpha1.AccessEntryEC2Linux
			return c.Update(ctx, m)
		}, "spec.accessEntryType EC2_LINUX" + nodeTypeRefusal},
		"merge patch to HYBRID_LINUX": {
			merge(`{"spec":{"accessEntryType":"HYBRID_LINUX"}}`),
			"spec.accessEntryType HYBRID_LINUX" + nodeTypeRefusal},
		"JSON patch to FARGATE_LINUX": {
			jsonPatch(`[{"op":"add","path":"/spec/accessEntryType","value":"FARGATE_LINUX"}]`),
			"spec.accessEntryType FARGATE_LINUX" + nodeTypeRefusal},
		"server-side apply of EC2_WINDOWS": {
			apply(map[string]any{"accessEntryType": "EC2_WINDOWS"}),
			"spec.accessEntryType EC2_WINDOWS" + nodeTypeRefusal},
	}
	for what, e := range escalations {
		t.Run("an editor cannot give an ordinary mapping "+what, func(t *testing.T) {
			g := NewWithT(t)
			m := ordinaryTeam("team")
			g.Expect(editor.Create(ctx, m)).To(Succeed())
			t.Cleanup(func() { forceDelete(NewWithT(t), m) })
			err := e.write(editor, m.DeepCopy())
			expectForbidden(g, err, "IAMIdentityMapping team is privileged: "+e.reason)
			g.Expect(err.Error()).To(ContainSubstring("To update a privileged mapping " + askForEscalate))
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.Spec).To(Equal(ordinaryTeam("team").Spec))
		})
		t.Run("an escalate holder can "+what, func(t *testing.T) {
			g := NewWithT(t)
			m := ordinaryTeam("team")
			g.Expect(editor.Create(ctx, m)).To(Succeed())
			t.Cleanup(func() { forceDelete(NewWithT(t), m) })
			g.Expect(e.write(holder, m.DeepCopy())).To(Succeed())
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.Spec).NotTo(Equal(ordinaryTeam("team").Spec), "the write changed nothing, so it proved nothing")
		})
	}

	t.Run("an editor can set access entry type STANDARD on an ordinary mapping", func(t *testing.T) {
		g := NewWithT(t)
		m := ordinaryTeam("team")
		g.Expect(editor.Create(ctx, m)).To(Succeed())
		t.Cleanup(func() { forceDelete(NewWithT(t), m) })
		g.Expect(editor.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"accessEntryType":"STANDARD"}}`)))).To(Succeed())
		g.Expect(m.Spec.AccessEntryType).To(Equal(iamv1alpha1.AccessEntryStandard))
	})
}

func TestEditorsCannotChangeOrRemoveAccessEntryGrants(t *testing.T) {
	editor, holder := accessEntrySetup(t)
	ctx := context.Background()

	// The privileged mappings an escalate holder wrote, server-side applied
	// as a GitOps tool would, so that an editor may try to apply under the
	// same field manager; and what the refusals must say of them.
	const gitops = "gitops"
	specs := map[string]func() map[string]any{
		"admins": func() map[string]any {
			return map[string]any{
				"arn": "arn:aws:iam::111122223333:role/admins", "username": "team:{{SessionName}}", "groups": []any{"viewers"},
				"accessPolicies": []any{
					map[string]any{"policy": "AmazonEKSClusterAdminPolicy"},
					map[string]any{"policy": "AmazonEKSViewPolicy", "namespaces": []any{"default"}},
				},
			}
		},
		"nodes": func() map[string]any {
			return map[string]any{"arn": "arn:aws:iam::111122223333:role/hybrid-nodes", "username": "team:x", "accessEntryType": "HYBRID_LINUX"}
		},
	}
	reasons := map[string]string{
		"admins": "spec.accessPolicies AmazonEKSClusterAdminPolicy on the whole cluster" + accessPolicyRefusal,
		"nodes":  "spec.accessEntryType HYBRID_LINUX" + nodeTypeRefusal,
	}
	// hold applies the named spec as the holder and returns the mapping as
	// stored.
	hold := func(t *testing.T, name string) *iamv1alpha1.IAMIdentityMapping {
		g := NewWithT(t)
		g.Expect(applyAs(holder, gitops, name, specs[name]())).To(Succeed())
		m := &iamv1alpha1.IAMIdentityMapping{}
		g.Expect(k.Get(ctx, client.ObjectKey{Name: name}, m)).To(Succeed())
		t.Cleanup(func() { forceDelete(NewWithT(t), m) })
		return m
	}

	// Every verb that changes a privileged mapping, the removal of what
	// makes it privileged included: as for groups, that needs escalate.
	type change struct {
		of    string
		write func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error
		// reason is what the refusal names: the new spec's reason when it
		// has one, else the old's.
		reason string
	}
	changes := map[string]change{
		"update removing every access policy": {"admins", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.AccessPolicies = nil
			return c.Update(ctx, m)
		}, reasons["admins"]},
		"merge patch removing every access policy": {"admins", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"accessPolicies":null}}`)))
		}, reasons["admins"]},
		"JSON patch removing one access policy": {"admins", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/spec/accessPolicies/1"}]`)))
		}, reasons["admins"]},
		"JSON patch widening a namespaced policy": {"admins", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/accessPolicies/1/namespaces/-","value":"kube-system"}]`)))
		}, reasons["admins"]},
		"update re-pointing the arn": {"admins", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.ARN = "arn:aws:iam::111122223333:role/attacker"
			return c.Update(ctx, m)
		}, reasons["admins"]},
		"server-side apply under the same manager without the policies": {"admins", func(c client.Client, _ *iamv1alpha1.IAMIdentityMapping) error {
			spec := specs["admins"]()
			delete(spec, "accessPolicies")
			return applyAs(c, gitops, "admins", spec)
		}, reasons["admins"]},
		"update to STANDARD": {"nodes", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			m.Spec.AccessEntryType = iamv1alpha1.AccessEntryStandard
			return c.Update(ctx, m)
		}, reasons["nodes"]},
		"JSON patch removing the type": {"nodes", func(c client.Client, m *iamv1alpha1.IAMIdentityMapping) error {
			return c.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/spec/accessEntryType"}]`)))
		}, reasons["nodes"]},
		"server-side apply of another node type": {"nodes", func(c client.Client, _ *iamv1alpha1.IAMIdentityMapping) error {
			spec := specs["nodes"]()
			spec["accessEntryType"] = "EC2_LINUX"
			return applyAs(c, "attacker", "nodes", spec)
		}, "spec.accessEntryType EC2_LINUX" + nodeTypeRefusal},
	}
	for what, c := range changes {
		t.Run("an editor cannot change "+c.of+" by "+what, func(t *testing.T) {
			g := NewWithT(t)
			m := hold(t, c.of)
			err := c.write(editor, m.DeepCopy())
			expectForbidden(g, err, "IAMIdentityMapping "+c.of+" is privileged: "+c.reason)
			g.Expect(err.Error()).To(ContainSubstring("To update a privileged mapping " + askForEscalate))
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.Spec).To(Equal(m.Spec))
		})
		t.Run("an escalate holder can change "+c.of+" by "+what, func(t *testing.T) {
			g := NewWithT(t)
			m := hold(t, c.of)
			g.Expect(c.write(holder, m.DeepCopy())).To(Succeed())
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.Spec).NotTo(Equal(m.Spec), "the write changed nothing, so it proved nothing")
		})
	}

	for name := range specs {
		t.Run("an editor can label but not delete "+name, func(t *testing.T) {
			g := NewWithT(t)
			m := hold(t, name)
			err := editor.Delete(ctx, m)
			expectForbidden(g, err, "IAMIdentityMapping "+name+" is privileged: "+reasons[name])
			g.Expect(err.Error()).To(ContainSubstring("To delete a privileged mapping " + askForEscalate))
			g.Expect(editor.DeleteAllOf(ctx, &iamv1alpha1.IAMIdentityMapping{})).NotTo(Succeed())
			live := &iamv1alpha1.IAMIdentityMapping{}
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(m), live)).To(Succeed())
			g.Expect(live.DeletionTimestamp).To(BeNil())
			// Metadata is not access: Argo CD's tracking label passes.
			live.Labels = map[string]string{"argocd.argoproj.io/instance": "access"}
			g.Expect(editor.Update(ctx, live)).To(Succeed())
			g.Expect(holder.Delete(ctx, live)).To(Succeed())
		})
	}
}
