package awsauth_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// rules are every rule worded in rules.go, and those of accessentry that
// the CRD checks for the access entry fields.
var rules = []string{
	accessentry.RuleFieldsNeedARN, accessentry.RuleNodeNeedsRole, accessentry.RuleNodePolicies,
	accessentry.RulePolicyPartition, accessentry.RulePolicyOnce, accessentry.RuleNamespace, accessentry.RulePolicy,
	awsauth.RuleOneIdentity, awsauth.RuleUsernameIsSet, awsauth.RuleAccountAlone, awsauth.RuleAccountID,
	awsauth.RuleRoleTemplate, awsauth.RuleFixedPrefix, awsauth.RuleNoControl, awsauth.RuleTemplates,
	awsauth.RuleARNForm, awsauth.RuleARNStart, awsauth.RuleARNIAM, awsauth.RuleARNAccount,
	awsauth.RuleARNKind, awsauth.RuleARNName, awsauth.RuleAssumedRole, awsauth.RuleARNPartition,
}

// crdMessages are the messages of the CRD's validation rules, as
// controller-gen wrote them: each message, and each string literal of a
// messageExpression (which picks one of several).
func crdMessages(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../config/crd/bases/iam.aws-auth-guardian.dev_iamidentitymappings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`'([^']*)'`)
	var messages []string
	var walk func(s *apiextensionsv1.JSONSchemaProps)
	walk = func(s *apiextensionsv1.JSONSchemaProps) {
		for _, v := range s.XValidations {
			messages = append(messages, v.Message)
			for _, m := range literal.FindAllStringSubmatch(v.MessageExpression, -1) {
				// Only the sentences: the expression also quotes patterns
				// and the pieces it splits the ARN with.
				if strings.Contains(m[1], " ") {
					messages = append(messages, m[1])
				}
			}
		}
		for _, p := range s.Properties {
			walk(&p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(s.Items.Schema)
		}
	}
	for _, v := range crd.Spec.Versions {
		walk(v.Schema.OpenAPIV3Schema)
	}
	return messages
}

// TestCRDSaysWhatTheCodeSays holds the CRD's messages to the rules'
// words: kubectl apply refuses a spec with the same words that a
// mapping's status and the render command use for it.
func TestCRDSaysWhatTheCodeSays(t *testing.T) {
	messages := crdMessages(t)
	if len(messages) < 10 {
		t.Fatalf("found only %d messages in the CRD: %q", len(messages), messages)
	}
	for _, m := range messages {
		// A message is a rule, or a rule followed by what to do instead
		// (the role an assumed-role ARN names).
		if !slices.ContainsFunc(rules, func(r string) bool { return m == r || strings.HasPrefix(m, r+": ") }) {
			t.Errorf("the CRD says %q, which no rule in rules.go says", m)
		}
	}
	for _, r := range rules {
		if !slices.ContainsFunc(messages, func(m string) bool { return m == r || strings.HasPrefix(m, r+": ") }) {
			t.Errorf("rule %q is not in the CRD", r)
		}
	}
}

// TestErrorsUseTheRules breaks each rule once and expects its words in
// the error the controller and the render command report.
func TestErrorsUseTheRules(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/admins"
	user := "arn:aws:iam::111122223333:user/alice"
	cases := []struct {
		rule    string
		mapping awsauth.Mapping
	}{
		{awsauth.RuleOneIdentity, awsauth.Mapping{ARN: role, Username: "a", AccountID: "111122223333"}},
		{awsauth.RuleOneIdentity, awsauth.Mapping{Username: "a"}},
		{awsauth.RuleUsernameIsSet, awsauth.Mapping{ARN: role}},
		{awsauth.RuleAccountAlone, awsauth.Mapping{AccountID: "111122223333", Username: "a"}},
		{awsauth.RuleAccountID, awsauth.Mapping{AccountID: "11112222333"}},
		{awsauth.RuleRoleTemplate, awsauth.Mapping{ARN: user, Username: "system:node:{{EC2PrivateDNSName}}"}},
		{awsauth.RuleFixedPrefix, awsauth.Mapping{ARN: role, Username: "{{SessionName}}"}},
		{awsauth.RuleNoControl, awsauth.Mapping{ARN: role, Username: "a\nb"}},
		{awsauth.RuleTemplates, awsauth.Mapping{ARN: role, Username: "a:{{SessionID}}"}},
		{awsauth.RuleARNStart, awsauth.Mapping{ARN: "admins", Username: "a"}},
		{awsauth.RuleARNPartition, awsauth.Mapping{ARN: "arn:aws-mars:iam::111122223333:role/admins", Username: "a"}},
		{awsauth.RuleARNIAM, awsauth.Mapping{ARN: "arn:aws:s3:::bucket/x", Username: "a"}},
		{awsauth.RuleARNAccount, awsauth.Mapping{ARN: "arn:aws:iam::11112222333:role/admins", Username: "a"}},
		{awsauth.RuleARNKind, awsauth.Mapping{ARN: "arn:aws:iam::111122223333:group/devs", Username: "a"}},
		{awsauth.RuleARNName, awsauth.Mapping{ARN: "arn:aws:iam::111122223333:role/my admins", Username: "a"}},
		{awsauth.RuleAssumedRole, awsauth.Mapping{ARN: "arn:aws:sts::111122223333:assumed-role/Admin/jane", Username: "a"}},
	}
	for _, tc := range cases {
		_, err := tc.mapping.Entry()
		if err == nil || !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("%+v: error %v, want one with %q", tc.mapping, err, tc.rule)
		}
	}
}
