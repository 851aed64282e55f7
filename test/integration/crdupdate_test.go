package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// shippedCRD is the CRD as config/crd/bases has it.
func shippedCRD(g Gomega) *apiextensionsv1.CustomResourceDefinition {
	data, err := os.ReadFile(filepath.Join(crdPaths[0], "iam.aws-auth-guardian.dev_iamidentitymappings.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(yaml.UnmarshalStrict(data, crd)).To(Succeed())
	return crd
}

// restoreCRD puts the shipped CRD back over whatever a test left, as
// break-glass, so that it passes the policy if that is still in force.
func restoreCRD(t *testing.T, breakGlass client.Client) {
	g := NewWithT(t)
	g.Eventually(func() error {
		live := &apiextensionsv1.CustomResourceDefinition{}
		if err := k.Get(context.Background(), client.ObjectKey{Name: managed.CRDName}, live); err != nil {
			return err
		}
		crd := shippedCRD(g)
		crd.ResourceVersion = live.ResourceVersion
		return breakGlass.Update(context.Background(), crd)
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// TestPolicyProtectsCRDUpdates: an update of the CRD may not stop serving a
// version nor drop validation, but for break-glass; an upgrade that adds
// rules, a metadata change and the shipped CRD re-applied pass.
func TestPolicyProtectsCRDUpdates(t *testing.T) {
	resetCluster(t)
	admin, _ := userClient(t, "alice", "system:masters")
	breakGlass, _ := userClient(t, "bob", "system:masters", breakGlassGroup)
	ctx := context.Background()
	g := NewWithT(t)

	// edited is the live CRD with edit applied; updates below are dry runs,
	// which go through admission and change nothing.
	edited := func(g Gomega, edit func(*apiextensionsv1.JSONSchemaProps, *apiextensionsv1.CustomResourceDefinition)) *apiextensionsv1.CustomResourceDefinition {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k.Get(ctx, client.ObjectKey{Name: managed.CRDName}, crd)).To(Succeed())
		spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		edit(&spec, crd)
		crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		return crd
	}
	dropLast := func(rules *apiextensionsv1.ValidationRules) { *rules = (*rules)[:len(*rules)-1] }
	property := func(spec *apiextensionsv1.JSONSchemaProps, name string, edit func(*apiextensionsv1.JSONSchemaProps)) {
		p := spec.Properties[name]
		edit(&p)
		spec.Properties[name] = p
	}
	unserve := func(_ *apiextensionsv1.JSONSchemaProps, crd *apiextensionsv1.CustomResourceDefinition) {
		crd.Spec.Versions[0].Served = false
	}
	// Registered before protect, so they run after the policies are deleted:
	// wait until this one no longer applies, then put the CRD back.
	t.Cleanup(func() { restoreCRD(t, breakGlass) })
	t.Cleanup(func() {
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(admin.Update(ctx, edited(g, unserve), client.DryRunAll)).To(Succeed())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
	protect(t)

	unserved := edited(g, unserve)
	g.Eventually(func() error {
		return admin.Update(ctx, unserved.DeepCopy(), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(HaveOccurred())
	expectForbidden(g, admin.Update(ctx, unserved.DeepCopy(), client.DryRunAll), "This update of the IAMIdentityMapping CRD stops serving v1alpha1")

	for _, tc := range []struct {
		name, path string
		edit       func(*apiextensionsv1.JSONSchemaProps, *apiextensionsv1.CustomResourceDefinition)
	}{
		{"a rule of spec removed", "v1alpha1 spec", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			dropLast(&s.XValidations)
		}},
		{"a rule of spec rewritten", "v1alpha1 spec", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			s.XValidations[0].Rule = "true"
		}},
		{"a rule of arn removed", "v1alpha1 spec.arn", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "arn", func(p *apiextensionsv1.JSONSchemaProps) { dropLast(&p.XValidations) })
		}},
		{"a rule of username removed", "v1alpha1 spec.username", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "username", func(p *apiextensionsv1.JSONSchemaProps) { dropLast(&p.XValidations) })
		}},
		{"a rule of accountID removed", "v1alpha1 spec.accountID", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accountID", func(p *apiextensionsv1.JSONSchemaProps) { p.XValidations = nil })
		}},
		{"a rule of groups items removed", "v1alpha1 spec.groups[*]", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "groups", func(p *apiextensionsv1.JSONSchemaProps) { dropLast(&p.Items.Schema.XValidations) })
		}},
		// The access entry fields: what makes a node or a policy
		// association valid is as much the CRD's as what makes aws-auth so.
		{"the access entry rules of spec removed", "v1alpha1 spec, spec, spec, spec", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			*s = withoutAccessEntryRules(*s)
		}},
		{"the rule of accessPolicies removed", "v1alpha1 spec.accessPolicies", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accessPolicies", func(p *apiextensionsv1.JSONSchemaProps) { p.XValidations = nil })
		}},
		{"the rule of an access policy's policy removed", "v1alpha1 spec.accessPolicies[*].policy", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accessPolicies", func(p *apiextensionsv1.JSONSchemaProps) {
				property(p.Items.Schema, "policy", func(p *apiextensionsv1.JSONSchemaProps) { p.XValidations = nil })
			})
		}},
		{"the rule of an access policy's namespaces rewritten", "v1alpha1 spec.accessPolicies[*].namespaces[*]", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accessPolicies", func(p *apiextensionsv1.JSONSchemaProps) {
				property(p.Items.Schema, "namespaces", func(p *apiextensionsv1.JSONSchemaProps) { p.Items.Schema.XValidations[0].Rule = "true" })
			})
		}},
		{"a value added to the enum of accessEntryType", "v1alpha1 spec.accessEntryType enum", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accessEntryType", func(p *apiextensionsv1.JSONSchemaProps) {
				p.Enum = append(p.Enum, apiextensionsv1.JSON{Raw: []byte(`"EC2"`)})
			})
		}},
		{"the enum of accessEntryType removed", "v1alpha1 spec.accessEntryType enum", func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			property(s, "accessEntryType", func(p *apiextensionsv1.JSONSchemaProps) { p.Enum = nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			crd := edited(g, tc.edit)
			expectForbidden(g, admin.Update(ctx, crd.DeepCopy(), client.DryRunAll), "drops or rewrites validation rules ("+tc.path+")")
			g.Expect(breakGlass.Update(ctx, crd, client.DryRunAll)).To(Succeed())
		})
	}
	t.Run("break-glass may stop serving a version", func(t *testing.T) {
		NewWithT(t).Expect(breakGlass.Update(ctx, unserved.DeepCopy(), client.DryRunAll)).To(Succeed())
	})
	t.Run("unknown fields kept in spec", func(t *testing.T) {
		g := NewWithT(t)
		crd := edited(g, func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			preserve := true
			s.XPreserveUnknownFields = &preserve
		})
		expectForbidden(g, admin.Update(ctx, crd, client.DryRunAll), "sets x-kubernetes-preserve-unknown-fields on the schema or its spec (v1alpha1)")
	})
	// A second version: a copy of v1alpha1, served, not stored.
	addVersion := func(edit func(*apiextensionsv1.JSONSchemaProps)) *apiextensionsv1.CustomResourceDefinition {
		crd := edited(g, func(*apiextensionsv1.JSONSchemaProps, *apiextensionsv1.CustomResourceDefinition) {})
		v := *crd.Spec.Versions[0].DeepCopy()
		v.Name, v.Storage = "v1beta1", false
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		edit(&spec)
		v.Schema.OpenAPIV3Schema.Properties["spec"] = spec
		crd.Spec.Versions = append(crd.Spec.Versions, v)
		return crd
	}
	t.Run("a new served version without the rules", func(t *testing.T) {
		g := NewWithT(t)
		bare := addVersion(func(s *apiextensionsv1.JSONSchemaProps) {
			s.XValidations = nil
			property(s, "arn", func(p *apiextensionsv1.JSONSchemaProps) { p.XValidations = nil })
		})
		expectForbidden(g, admin.Update(ctx, bare.DeepCopy(), client.DryRunAll), "adds the served version v1beta1 without every x-kubernetes-validations rule")
		g.Expect(breakGlass.Update(ctx, bare, client.DryRunAll)).To(Succeed())
		// With the same rules it is an ordinary upgrade.
		g.Expect(admin.Update(ctx, addVersion(func(*apiextensionsv1.JSONSchemaProps) {}), client.DryRunAll)).To(Succeed())
	})
	t.Run("an added rule passes", func(t *testing.T) {
		g := NewWithT(t)
		crd := edited(g, func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			s.XValidations = append(s.XValidations, apiextensionsv1.ValidationRule{Rule: "!has(self.arn) || size(self.arn) > 20", Message: "arn is too short"})
			property(s, "arn", func(p *apiextensionsv1.JSONSchemaProps) {
				p.XValidations = append(p.XValidations, apiextensionsv1.ValidationRule{Rule: "self.startsWith('arn:')"})
			})
		})
		g.Expect(admin.Update(ctx, crd, client.DryRunAll)).To(Succeed())
	})
	t.Run("a label passes", func(t *testing.T) {
		g := NewWithT(t)
		crd := edited(g, func(_ *apiextensionsv1.JSONSchemaProps, crd *apiextensionsv1.CustomResourceDefinition) {
			crd.Labels = map[string]string{"team": "platform"}
		})
		g.Expect(admin.Update(ctx, crd)).To(Succeed())
	})
	t.Run("the status passes", func(t *testing.T) {
		g := NewWithT(t)
		crd := edited(g, func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			dropLast(&s.XValidations)
		})
		g.Expect(admin.Status().Update(ctx, crd, client.DryRunAll)).To(Succeed())
	})
	// Last: it changes the live CRD, and puts the shipped one back.
	t.Run("an upgrade from a CRD without the access entry fields passes", func(t *testing.T) {
		g := NewWithT(t)
		before := edited(g, func(s *apiextensionsv1.JSONSchemaProps, _ *apiextensionsv1.CustomResourceDefinition) {
			*s = withoutAccessEntryRules(*s)
			delete(s.Properties, "accessEntryType")
			delete(s.Properties, "accessPolicies")
		})
		g.Expect(breakGlass.Update(ctx, before)).To(Succeed())
		t.Cleanup(func() { restoreCRD(t, breakGlass) })
		upgrade := shippedCRD(g)
		upgrade.ResourceVersion = before.ResourceVersion
		g.Expect(admin.Update(ctx, upgrade, client.DryRunAll)).To(Succeed())
	})
	t.Run("the shipped CRD re-applied passes", func(t *testing.T) {
		// As the suite installs it, through the admin of envtest.
		_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: crdPaths, ErrorIfPathMissing: true})
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
	})
}

// withoutAccessEntryRules is spec without its rules about accessEntryType
// and accessPolicies, as a CRD from before those fields had it.
func withoutAccessEntryRules(spec apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
	spec.XValidations = slices.DeleteFunc(slices.Clone(spec.XValidations), func(r apiextensionsv1.ValidationRule) bool {
		return strings.Contains(r.Rule, "accessEntryType") || strings.Contains(r.Rule, "accessPolicies")
	})
	return spec
}
