package accessentry_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

var fullPolicyARN = regexp.MustCompile(`^arn:([a-z-]+):eks::aws:cluster-access-policy/[A-Za-z0-9]+$`)

// FuzzTranslate checks what must hold of every access entry Translate
// returns, whatever the mapping: no system: group, nothing but principal
// and type on a node entry, full policy ARNs in the principal's partition,
// no reserved username, system:masters always replaced by the cluster
// admin policy, and the entry equal to itself however its sets are ordered.
func FuzzTranslate(f *testing.F) {
	f.Add("arn:aws:iam::111122223333:role/teams/a/admins", "admin", "system:masters", "ops", "", "", "AmazonEKSViewPolicy", "dev-*", "", uint8(2))
	f.Add("arn:aws:iam::111122223333:role/nodes", "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes", "eks:kube-proxy-windows", "", "", "", "arn:aws:iam::111122223333:role/eks/nodes", uint8(3))
	f.Add("arn:aws:iam::111122223333:role/fargate", "system:node:{{SessionName}}", "system:bootstrappers", "system:nodes", "system:node-proxier", "HYBRID_LINUX", "", "", "", uint8(3))
	f.Add("arn:aws:iam::111122223333:role/hybrid", "system:node:{{SessionName}}", "system:nodes", "", "", "HYBRID_LINUX", "AmazonEKSViewPolicy", "", "", uint8(1))
	f.Add("arn:aws-cn:iam::111122223333:user/jane", "{{AccountID}}:{{SessionNameRaw}}", "team-{{AccountID}}", "system:{{AccountID}}", "", "STANDARD", "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", "a", "", uint8(1))
	f.Add("arn:aws:iam::111122223333:role/admins", "eks:admin", "system:masters", "", "", "EC2_LINUX", "arn:aws:eks::aws:cluster-access-policy/X", "*", "arn:aws:iam::111122223333:role/aws-service-role/x/admins", uint8(1))
	f.Fuzz(func(t *testing.T, arn, username, group0, group1, group2, typ, policyName, namespace, resolved string, groupCount uint8) {
		in := accessentry.Input{
			Mapping:     awsauth.Mapping{Name: "fuzz", ARN: arn, Username: username, Groups: []string{group0, group1, group2}[:groupCount%4]},
			Type:        iamv1alpha1.AccessEntryType(typ),
			ResolvedARN: resolved,
		}
		if policyName != "" {
			p := iamv1alpha1.AccessPolicy{Policy: policyName}
			if namespace != "" {
				p.Namespaces = []iamv1alpha1.AccessPolicyNamespace{iamv1alpha1.AccessPolicyNamespace(namespace)}
			}
			in.Policies = []iamv1alpha1.AccessPolicy{p}
		}
		got, err := accessentry.Translate(in)
		var refusal *accessentry.NotRepresentable
		if errors.As(err, &refusal) && refusal.Rule == "" {
			t.Fatalf("a refusal without a rule: %v", err)
		}
		if err != nil {
			return
		}
		e := got.Entry
		partition := strings.Split(arn, ":")[1]
		switch {
		case got.ResolveRole != "" && (e.PrincipalARN != arn || resolved != ""):
			t.Fatalf("asks to resolve %q, but its principal is %q (resolved %q)", got.ResolveRole, e.PrincipalARN, resolved)
		case e.PrincipalARN != arn && e.PrincipalARN != resolved:
			t.Fatalf("principal %q is neither arn %q nor the resolved %q", e.PrincipalARN, arn, resolved)
		case e.Type != iamv1alpha1.AccessEntryStandard && (e.Username != "" || e.KubernetesGroups != nil || e.Policies != nil):
			t.Fatalf("a %s entry with username, groups or policies: %+v", e.Type, e)
		case e.Type != iamv1alpha1.AccessEntryStandard && strings.Contains(e.PrincipalARN, ":user/"):
			t.Fatalf("a %s entry for a user: %+v", e.Type, e)
		case slices.ContainsFunc(e.KubernetesGroups, func(g string) bool { return strings.HasPrefix(g, "system:") || strings.Contains(g, "{{") }):
			t.Fatalf("a system: group or a template in %v", e.KubernetesGroups)
		case slices.ContainsFunc([]string{"system:", "eks:", "aws:", "amazon:", "iam:"}, func(p string) bool { return strings.HasPrefix(e.Username, p) }):
			t.Fatalf("a reserved username %q", e.Username)
		case strings.Contains(strings.NewReplacer("{{SessionName}}", "", "{{SessionNameRaw}}", "").Replace(e.Username), "{{"):
			t.Fatalf("a template EKS does not expand in %q", e.Username)
		}
		for _, p := range e.Policies {
			if m := fullPolicyARN.FindStringSubmatch(p.ARN); m == nil || m[1] != partition {
				t.Fatalf("policy %q is not a full ARN in partition %q", p.ARN, partition)
			}
		}
		if e.Type == iamv1alpha1.AccessEntryStandard && slices.Contains(in.Mapping.Groups, "system:masters") &&
			!slices.ContainsFunc(e.Policies, func(p accessentry.Policy) bool {
				return strings.HasSuffix(p.ARN, "/AmazonEKSClusterAdminPolicy") && len(p.Namespaces) == 0
			}) {
			t.Fatalf("system:masters without the cluster admin policy on the cluster: %+v", e)
		}
		reordered := e
		reordered.KubernetesGroups = slices.Clone(e.KubernetesGroups)
		slices.Reverse(reordered.KubernetesGroups)
		reordered.Policies = slices.Clone(e.Policies)
		slices.Reverse(reordered.Policies)
		if !accessentry.Equal(e, reordered) {
			t.Fatalf("an entry differs from itself reordered: %+v", accessentry.Diff(e, reordered))
		}
	})
}
