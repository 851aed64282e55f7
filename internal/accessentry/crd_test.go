package accessentry_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// crdRules are the rules of rules.go that the CRD checks too.
var crdRules = []string{
	accessentry.RuleFieldsNeedARN, accessentry.RuleNodeNeedsRole, accessentry.RuleNodePolicies,
	accessentry.RulePolicyPartition, accessentry.RulePolicyOnce, accessentry.RuleNamespace, accessentry.RulePolicy,
}

func crdSpec(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	data, err := os.ReadFile("../../config/crd/bases/iam.aws-auth-guardian.dev_iamidentitymappings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
}

// messages are those of the rules of s and everything under it.
func messages(s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for _, v := range s.XValidations {
		out = append(out, v.Message)
	}
	for _, p := range s.Properties {
		out = append(out, messages(p)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		out = append(out, messages(*s.Items.Schema)...)
	}
	return out
}

// TestCRDSaysWhatTranslateSays holds the CRD's messages about the access
// entry fields to the rules' words, so that kubectl apply and a mapping's
// status say the same thing about the same mistake.
func TestCRDSaysWhatTranslateSays(t *testing.T) {
	spec := crdSpec(t)
	all := messages(spec)
	for _, r := range crdRules {
		if !slices.Contains(all, r) {
			t.Errorf("rule %q is not in the CRD", r)
		}
	}
	for _, m := range slices.Concat(messages(spec.Properties["accessPolicies"]), messages(spec.Properties["accessEntryType"])) {
		if !slices.Contains(crdRules, m) {
			t.Errorf("the CRD says %q, which no rule in rules.go says", m)
		}
	}
}

// TestCRDListsThePolicyNames holds the CRD's rule for spec.accessPolicies
// [*].policy to PolicyNames, so that kubectl apply and Translate accept the
// same names. (The envtest suite checks that the API server enforces it.)
func TestCRDListsThePolicyNames(t *testing.T) {
	rules := crdSpec(t).Properties["accessPolicies"].Items.Schema.Properties["policy"].XValidations
	if len(rules) != 1 {
		t.Fatalf("policy has %d rules, want 1", len(rules))
	}
	list := regexp.MustCompile(`^self in \[([^\]]*)\] \|\| `).FindStringSubmatch(rules[0].Rule)
	if list == nil {
		t.Fatalf("the policy rule does not start with a list of names: %s", rules[0].Rule)
	}
	var names []string
	for _, m := range regexp.MustCompile(`'([A-Za-z0-9]+)'`).FindAllStringSubmatch(list[1], -1) {
		names = append(names, m[1])
	}
	if !slices.Equal(names, accessentry.PolicyNames) {
		t.Fatalf("the CRD lists\n%v\nPolicyNames are\n%v", names, accessentry.PolicyNames)
	}
}
