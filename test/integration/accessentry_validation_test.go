package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

// TestAPIServerRefusesInvalidAccessEntryFields asserts what kubectl apply
// says about the access entry fields. Each case is also given to
// accessentry.Translate, which must refuse it too, in the same words where
// the rule is one of ours.
func TestAPIServerRefusesInvalidAccessEntryFields(t *testing.T) {
	role := "arn:aws:iam::111122223333:role/teams/admins"
	node := spec{"arn": "arn:aws:iam::111122223333:role/nodes", "username": "system:node:{{EC2PrivateDNSName}}", "groups": []any{"system:nodes"}}
	with := func(s spec, extra spec) spec {
		out := spec{}
		for k, v := range s {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	policies := func(p ...any) spec { return spec{"arn": role, "username": "dev", "accessPolicies": p} }
	policy := func(name string, namespaces ...any) map[string]any {
		p := map[string]any{"policy": name}
		if len(namespaces) > 0 {
			p["namespaces"] = namespaces
		}
		return p
	}
	many := func(n int, f func(i int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	cases := []struct {
		name string
		spec spec
		want []string
		rule string
	}{
		{"a type with accountID", spec{"accountID": "111122223333", "accessEntryType": "STANDARD"}, []string{"spec"}, accessentry.RuleFieldsNeedARN},
		{"policies with accountID", spec{"accountID": "111122223333", "accessPolicies": []any{policy("AmazonEKSViewPolicy")}}, []string{"spec"}, accessentry.RuleFieldsNeedARN},
		{"an unknown type", spec{"arn": role, "username": "dev", "accessEntryType": "EC2"}, []string{"spec.accessEntryType", "Unsupported value"}, ""},
		{"a node type on a user", spec{"arn": "arn:aws:iam::111122223333:user/jane", "username": "jane", "accessEntryType": "EC2_LINUX"}, []string{"spec.accessEntryType"}, accessentry.RuleNodeNeedsRole},
		{"policies on a node type", with(node, spec{"accessEntryType": "EC2_LINUX", "accessPolicies": []any{policy("AmazonEKSViewPolicy")}}), []string{"spec.accessPolicies"}, accessentry.RuleNodePolicies},
		{"a misspelled policy", policies(policy("AmazonEKSClusterAdmin")), []string{"spec.accessPolicies[0].policy"}, accessentry.RulePolicy},
		{"an IAM policy ARN", policies(policy("arn:aws:iam::aws:policy/AdministratorAccess")), []string{"spec.accessPolicies[0].policy"}, accessentry.RulePolicy},
		{"a policy ARN of another partition", policies(policy("arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")), []string{"spec.accessPolicies"}, accessentry.RulePolicyPartition},
		{"a policy twice", policies(policy("AmazonEKSViewPolicy"), policy("AmazonEKSViewPolicy", "a")), []string{"spec.accessPolicies[1]", "Duplicate value"}, ""},
		{"a policy by name and by ARN", policies(policy("AmazonEKSViewPolicy"), policy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")), []string{"spec.accessPolicies"}, accessentry.RulePolicyOnce},
		{"no policy", policies(map[string]any{"namespaces": []any{"a"}}), []string{"spec.accessPolicies[0].policy", "Required value"}, ""},
		{"an upper case namespace", policies(policy("AmazonEKSViewPolicy", "Dev")), []string{"spec.accessPolicies[0].namespaces[0]"}, accessentry.RuleNamespace},
		{"a lone wildcard", policies(policy("AmazonEKSViewPolicy", "*")), []string{"spec.accessPolicies[0].namespaces[0]"}, accessentry.RuleNamespace},
		{"a wildcard inside", policies(policy("AmazonEKSViewPolicy", "dev*x")), []string{"spec.accessPolicies[0].namespaces[0]"}, accessentry.RuleNamespace},
		{"a namespace twice", policies(policy("AmazonEKSViewPolicy", "a", "a")), []string{"spec.accessPolicies[0].namespaces[1]", "Duplicate value"}, ""},
		{"a namespace of 64 characters", policies(policy("AmazonEKSViewPolicy", strings.Repeat("n", 64))), []string{"spec.accessPolicies[0].namespaces[0]", "may not be more than 63 bytes"}, ""},
		{"21 policies", policies(many(21, func(i int) any {
			return policy(fmt.Sprintf("arn:aws:eks::aws:cluster-access-policy/P%d", i))
		})...), []string{"spec.accessPolicies", "must have at most 20 items"}, ""},
		{"21 namespaces", policies(policy("AmazonEKSViewPolicy", many(21, func(i int) any { return fmt.Sprintf("ns-%d", i) })...)), []string{"spec.accessPolicies[0].namespaces", "must have at most 20 items"}, ""},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			u := unstructuredMapping(objectName("invalid-ae-", tc.name), tc.spec)
			err := k.Create(ctx, u)
			g.Expect(err).To(HaveOccurred(), "the API server accepted it")
			for _, want := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
			var m iamv1alpha1.IAMIdentityMapping
			g.Expect(runtimeFromUnstructured(u, &m)).To(Succeed())
			_, goErr := accessentry.Translate(accessentry.InputFrom(&m))
			g.Expect(goErr).To(HaveOccurred(), "Translate accepts what the API server refuses")
			if tc.rule != "" {
				g.Expect(err.Error()).To(ContainSubstring(tc.rule))
				g.Expect(goErr.Error()).To(ContainSubstring(tc.rule))
			}
		})
	}
}

// TestAPIServerAcceptsAccessEntryFields: what the API server accepts,
// Translate translates, and the result fits status.accessEntry.
func TestAPIServerAcceptsAccessEntryFields(t *testing.T) {
	every := make([]any, len(accessentry.PolicyNames))
	for i, name := range accessentry.PolicyNames {
		every[i] = map[string]any{"policy": name}
	}
	cases := map[string]spec{
		"policies by name and ARN, namespaces and a wildcard": {"arn": "arn:aws:iam::111122223333:role/teams/admins", "username": "admin", "groups": []any{"system:masters"},
			"accessPolicies": []any{
				map[string]any{"policy": "AmazonEKSViewPolicy", "namespaces": []any{"team-a", "dev-*"}},
				map[string]any{"policy": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"},
			}},
		"every policy name": {"arn": "arn:aws:iam::111122223333:user/jane", "username": "jane", "accessPolicies": every},
		"a policy ARN AWS added later, in aws-cn": {"arn": "arn:aws-cn:iam::111122223333:role/a/dev", "username": "dev",
			"accessPolicies": []any{map[string]any{"policy": "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSFuturePolicy"}}},
		"a hybrid nodes role": {"arn": "arn:aws:iam::111122223333:role/a/hybrid", "username": "system:node:{{SessionName}}", "groups": []any{"system:bootstrappers", "system:nodes"}, "accessEntryType": "HYBRID_LINUX"},
		"a Windows node role": {"arn": "arn:aws:iam::111122223333:role/a/win", "username": "system:node:{{EC2PrivateDNSName}}", "groups": []any{"system:nodes"}, "accessEntryType": "EC2_WINDOWS"},
		"STANDARD for a user": {"arn": "arn:aws:iam::111122223333:user/jane", "username": "jane", "accessEntryType": "STANDARD"},
	}
	ctx := context.Background()
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			u := unstructuredMapping(objectName("valid-ae-", name), s)
			g.Expect(k.Create(ctx, u)).To(Succeed())
			t.Cleanup(func() { _ = k.Delete(ctx, u) })
			var m iamv1alpha1.IAMIdentityMapping
			g.Expect(runtimeFromUnstructured(u, &m)).To(Succeed())
			got, err := accessentry.Translate(accessentry.InputFrom(&m))
			g.Expect(err).NotTo(HaveOccurred())
			status := got.Entry.Status()
			m.Status.AccessEntry = &status
			g.Expect(k.Status().Update(ctx, &m)).To(Succeed())
			var back iamv1alpha1.IAMIdentityMapping
			g.Expect(k.Get(ctx, client.ObjectKeyFromObject(&m), &back)).To(Succeed())
			g.Expect(back.Status.AccessEntry).To(Equal(&status))
		})
	}
}

// objectName makes a test case's name an object name.
func objectName(prefix, name string) string {
	return prefix + strings.ToLower(strings.NewReplacer(" ", "-", ",", "").Replace(name))
}
