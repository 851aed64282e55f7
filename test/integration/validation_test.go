package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// spec is an IAMIdentityMapping spec as a person writes it in YAML, so
// that empty strings and wrong types reach the API server as written.
type spec map[string]any

func unstructuredMapping(name string, s spec) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any(s)}}
	u.SetAPIVersion(iamv1alpha1.GroupVersion.String())
	u.SetKind("IAMIdentityMapping")
	u.SetName(name)
	return u
}

// TestAPIServerRefusesInvalidSpecs asserts the messages a person sees from
// kubectl apply. Each case is also checked against the controller's own
// validation, so that the schema and the code agree on what is valid and
// word each rule of ours alike.
func TestAPIServerRefusesInvalidSpecs(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/admins"
	cases := []struct {
		name string
		spec spec
		want []string // substrings of the API server's error
		// rule, when it is one of ours, is in the API server's error and
		// in the controller's: the same words for the same mistake.
		rule string
	}{
		{"unknown partition", spec{"arn": "arn:aws-mars:iam::111122223333:role/admins", "username": "a"}, []string{"spec.arn", "unknown partition", "aws-us-gov"}, awsauth.RuleARNPartition},
		{"11-digit account in arn", spec{"arn": "arn:aws:iam::11112222333:role/admins", "username": "a"}, []string{"spec.arn", "exactly 12 digits"}, awsauth.RuleARNAccount},
		{"rol instead of role", spec{"arn": "arn:aws:iam::111122223333:rol/admins", "username": "a"}, []string{"spec.arn", "must name an IAM role (role/<name>) or user (user/<name>)"}, awsauth.RuleARNKind},
		{"not an ARN", spec{"arn": "admins", "username": "a"}, []string{"spec.arn", "must start with arn:"}, awsauth.RuleARNStart},
		{"not IAM", spec{"arn": "arn:aws:s3:::bucket/x", "username": "a"}, []string{"spec.arn", "must be an IAM ARN"}, awsauth.RuleARNIAM},
		{"role name too long", spec{"arn": "arn:aws:iam::111122223333:role/" + strings.Repeat("r", 65), "username": "a"}, []string{"spec.arn", "names are 1-64 characters"}, awsauth.RuleARNName},
		{"assumed-role session", spec{"arn": "arn:aws:sts::111122223333:assumed-role/Admin/jane@example.com", "username": "a"}, []string{"spec.arn", "map the role instead: arn:aws:iam::111122223333:role/Admin"}, awsauth.RuleAssumedRole},
		{"unknown template", spec{"arn": role, "username": "admin:{{SessionID}}"}, []string{"spec.username", "the only templates are {{AccountID}}"}, awsauth.RuleTemplates},
		{"unbalanced braces in a group", spec{"arn": role, "username": "a", "groups": []any{"team:{{AccountID"}}, []string{"spec.groups[0]", "the only templates are"}, awsauth.RuleTemplates},
		{"control character", spec{"arn": role, "username": "a\nb"}, []string{"spec.username", "control characters"}, awsauth.RuleNoControl},
		{"C1 control character", spec{"arn": role, "username": "a\u0085b"}, []string{"spec.username", "control characters"}, awsauth.RuleNoControl},
		{"node template on a user", spec{"arn": "arn:aws:iam::111122223333:user/jane", "username": "{{EC2PrivateDNSName}}"}, []string{"expanded only for roles"}, awsauth.RuleRoleTemplate},
		{"both arn and accountID", spec{"arn": role, "username": "a", "accountID": "111122223333"}, []string{"set exactly one of arn", "accountID"}, awsauth.RuleOneIdentity},
		{"neither arn nor accountID", spec{"username": "a"}, []string{"set exactly one of arn"}, awsauth.RuleOneIdentity},
		{"empty username", spec{"arn": role, "username": ""}, []string{"spec.username", "at least 1 chars long"}, ""},
		{"missing username", spec{"arn": role}, []string{"spec.username"}, awsauth.RuleUsernameIsSet},
		{"username with accountID", spec{"accountID": "111122223333", "username": "a"}, []string{"username and groups cannot be set with accountID"}, awsauth.RuleAccountAlone},
		{"11-digit accountID", spec{"accountID": "11112222333"}, []string{"spec.accountID", "exactly 12 digits"}, awsauth.RuleAccountID},
		{"empty group", spec{"arn": role, "username": "a", "groups": []any{""}}, []string{"spec.groups[0]", "at least 1 chars long"}, ""},
		{"17 groups", spec{"arn": role, "username": "a", "groups": groupsOf(17, 8)}, []string{"spec.groups", "must have at most 16 items"}, ""},
		{"a group of 129 characters", spec{"arn": role, "username": "a", "groups": groupsOf(1, 129)}, []string{"spec.groups[0]", "may not be more than 128 bytes"}, ""},
		{"a username of 257 characters", spec{"arn": role, "username": strings.Repeat("u", 257)}, []string{"spec.username", "may not be more than 256 bytes"}, ""},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			u := unstructuredMapping("invalid-"+strings.ReplaceAll(tc.name, " ", "-"), tc.spec)
			err := k.Create(ctx, u)
			g.Expect(err).To(HaveOccurred(), "the API server accepted it")
			for _, want := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
			var m iamv1alpha1.IAMIdentityMapping
			g.Expect(runtimeFromUnstructured(u, &m)).To(Succeed())
			_, goErr := managed.MappingInput(&m).Entry()
			g.Expect(goErr).To(HaveOccurred(), "the controller would render what the API server refuses")
			if tc.rule != "" {
				g.Expect(err.Error()).To(ContainSubstring(tc.rule))
				g.Expect(goErr.Error()).To(ContainSubstring(tc.rule))
			}
		})
	}
}

func TestAPIServerAcceptsValidSpecs(t *testing.T) {
	cases := map[string]spec{
		"role":             {"arn": "arn:aws:iam::111122223333:role/admins", "username": "admin:{{SessionName}}", "groups": []any{"system:masters"}},
		"role with a path": {"arn": "arn:aws:iam::111122223333:role/team/a/admins", "username": "admin"},
		"node role":        {"arn": "arn:aws:iam::111122223333:role/nodes", "username": "system:node:{{EC2PrivateDNSName}}", "groups": []any{"system:bootstrappers", "system:nodes"}},
		"user with a path": {"arn": "arn:aws:iam::111122223333:user/ops/jane", "username": "jane:{{AccessKeyID}}"},
		"aws-eusc":         {"arn": "arn:aws-eusc:iam::111122223333:role/admins", "username": "{{AccountID}}:{{SessionNameRaw}}"},
		"aws-iso-f":        {"arn": "arn:aws-iso-f:iam::111122223333:user/jane", "username": "jane"},
		"account":          {"accountID": "111122223333"},
		"the largest":      {"arn": "arn:aws:iam::111122223333:user/" + strings.Repeat("p/", 975) + strings.Repeat("u", 64), "username": strings.Repeat("u", 256), "groups": groupsOf(16, 128)},
	}
	ctx := context.Background()
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			u := unstructuredMapping("valid-"+strings.ReplaceAll(name, " ", "-"), s)
			g.Expect(k.Create(ctx, u)).To(Succeed())
			t.Cleanup(func() { _ = k.Delete(ctx, u) })
			var m iamv1alpha1.IAMIdentityMapping
			g.Expect(runtimeFromUnstructured(u, &m)).To(Succeed())
			_, err := managed.MappingInput(&m).Entry()
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

// groupsOf is n distinct groups of the given length.
func groupsOf(n, length int) []any {
	groups := make([]any, n)
	for i := range groups {
		name := fmt.Sprintf("g%d-", i)
		groups[i] = name + strings.Repeat("x", length-len(name))
	}
	return groups
}
