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

// TestCRDListsThePolicyNames holds the CRD's rule for spec.accessPolicies
// [*].policy to PolicyNames, so that kubectl apply and Translate accept the
// same names and word the refusal alike. (The envtest suite checks that the
// API server enforces the rule.)
func TestCRDListsThePolicyNames(t *testing.T) {
	data, err := os.ReadFile("../../config/crd/bases/iam.aws-auth-guardian.dev_iamidentitymappings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	rules := spec.Properties["accessPolicies"].Items.Schema.Properties["policy"].XValidations
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
	if rules[0].Message != accessentry.RulePolicy {
		t.Fatalf("the CRD says\n%s\nTranslate says\n%s", rules[0].Message, accessentry.RulePolicy)
	}
}
