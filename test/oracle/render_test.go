package oracle

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// misreadNames are usernames and groups that YAML turns into something else
// when they are written without quotes.
var misreadNames = []string{
	"true", "false", "True", "yes", "no", "on", "off", "y", "n", "null", "NULL", "~",
	"123", "0123", "-1", "+1", "1e3", "1.5", "0x1F", "0o17", "0b101", "1_000", ".inf", "-.Inf", ".nan", "2024-01-01", "12:30:00",
	"- x", "-", "? x", "?", ":", "a: b", "a:b", "a #b", "#comment", "&anchor", "*alias", "!tag", "!!str x", "%TAG x",
	"@handle", "`tick", "'single'", `"double"`, "[list]", "{map}", "|", ">", "|-", ",", "a,b", " leading", "trailing ", "  ",
	"{{AccountID}}", "{{AccountID}}:admin", "{{SessionName}}", "{{SessionNameRaw}}@x", "{{AccessKeyID}} x",
	"---", "...", "=", "<<", "\\", `a\nb`, "a'b\"c",
}

var unicodeNames = []string{
	"用户", "ユーザー:{{SessionName}}", "관리자", "мадмин", "مستخدم", "😀", "👩‍💻", "é", "é",
	"ß", "\u00a0", "\u200b", "\u2028", "\u2029", "\ufeff", "\ufeffx", "x\ufeff", "\U0010fffd", "\ufffd",
}

func TestRenderMatchesAuthenticator(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	nodeRole := mapping("nodes",
		withARN("arn:aws:iam::"+acct+":role/eksctl-prod-nodegroup-ng-1-NodeInstanceRole-1A2B3C4D5E6F"),
		withUsername("system:node:{{EC2PrivateDNSName}}"),
		withGroups("system:bootstrappers", "system:nodes"))

	tests := []struct {
		name     string
		mappings []awsauth.Mapping
		// shadowed are mappings that lose a conflict and must not be served.
		shadowed []string
	}{
		{name: "empty"},
		{name: "node role", mappings: []awsauth.Mapping{nodeRole}},
		{
			name: "node role and admins",
			mappings: []awsauth.Mapping{
				nodeRole,
				mapping("admins", withARN("arn:aws:iam::"+acct+":role/Admin"), withUsername("admin:{{SessionName}}"), withGroups("system:masters")),
				mapping("fargate", withARN("arn:aws:iam::"+acct+":role/eks/AmazonEKSFargatePodExecutionRole"), withUsername("system:node:{{SessionName}}"), withGroups("system:bootstrappers", "system:nodes", "system:node-proxier")),
				mapping("sso-admins", withARN("arn:aws:iam::"+acct+":role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0123456789abcdef"), withUsername("sso:{{SessionNameRaw}}"), withGroups("platform:admins")),
				mapping("ci", withARN("arn:aws:iam::444455556666:role/ci/github-actions"), withUsername("ci:{{AccountID}}:{{SessionName}}"), withGroups("ci:deployers")),
				mapping("readonly", withARN("arn:aws:iam::"+acct+":role/ReadOnly"), withUsername("readonly:{{AccessKeyID}}")),
			},
		},
		{
			name: "users with paths",
			mappings: []awsauth.Mapping{
				mapping("alice", withARN("arn:aws:iam::"+acct+":user/engineering/platform/alice"), withUsername("alice"), withGroups("platform:admins")),
				mapping("bob", withARN("arn:aws:iam::"+acct+":user/ops/bob"), withUsername("bob")),
				mapping("carol", withARN("arn:aws:iam::"+acct+":user/carol"), withUsername("carol:{{SessionName}}"), withGroups("a", "b", "c")),
				mapping("carol-upper", withARN("arn:aws:iam::"+acct+":user/Carol2"), withUsername("Carol")),
			},
		},
		{
			name: "accounts",
			mappings: []awsauth.Mapping{
				mapping("a1", withAccount("000000000001")),
				mapping("a2", withAccount("012345678901")),
				mapping("a3", withAccount("999999999999")),
				mapping("a4", withAccount("100000000000")),
			},
		},
		{
			name: "every partition",
			mappings: func() []awsauth.Mapping {
				var ms []awsauth.Mapping
				for i, p := range []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"} {
					ms = append(ms,
						mapping(fmt.Sprintf("r%d", i), withARN("arn:"+p+":iam::"+acct+":role/p/nodes"), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:nodes")),
						mapping(fmt.Sprintf("u%d", i), withARN("arn:"+p+":iam::"+acct+":user/p/admin"), withUsername("admin")))
				}
				return ms
			}(),
		},
		{
			name: "names YAML would misread",
			mappings: func() []awsauth.Mapping {
				var ms []awsauth.Mapping
				for i, n := range misreadNames {
					ms = append(ms,
						mapping(fmt.Sprintf("r%03d", i), withARN(fmt.Sprintf("arn:aws:iam::%s:role/r%03d", acct, i)), withUsername(asUsername(n)), withGroups(n, "x"+n, n+"x")),
						mapping(fmt.Sprintf("u%03d", i), withARN(fmt.Sprintf("arn:aws:iam::%s:user/u%03d", acct, i)), withUsername(asUsername(n)), withGroups(n)))
				}
				return ms
			}(),
		},
		{
			name: "unicode names",
			mappings: func() []awsauth.Mapping {
				var ms []awsauth.Mapping
				for i, n := range unicodeNames {
					ms = append(ms, mapping(fmt.Sprintf("r%03d", i), withARN(fmt.Sprintf("arn:aws:iam::%s:role/r%03d", acct, i)), withUsername(asUsername(n)), withGroups(n, "g:"+n)))
				}
				return ms
			}(),
		},
		{
			name: "largest entries",
			mappings: func() []awsauth.Mapping {
				groups := make([]string, awsauth.MaxGroups)
				for i := range groups {
					groups[i] = fmt.Sprintf("%02d", i) + strings.Repeat("ü", (awsauth.MaxGroupLength-2)/2)
				}
				return []awsauth.Mapping{
					mapping("big-role", withARN("arn:aws:iam::"+acct+":role/"+strings.Repeat("R", 64)), withUsername(strings.Repeat("u", awsauth.MaxUsernameLength)), withGroups(groups...)),
					mapping("big-user", withARN("arn:aws:iam::"+acct+":user/"+strings.Repeat("p/", 100)+strings.Repeat("U", 64)), withUsername(strings.Repeat("- ", awsauth.MaxUsernameLength/2)), withGroups(groups...)),
				}
			}(),
		},
		{
			name: "conflicts leave only the oldest",
			mappings: []awsauth.Mapping{
				mapping("admins-new", withARN("arn:aws:iam::"+acct+":role/team/Admins"), withUsername("new"), createdAfter(time.Hour)),
				mapping("admins-old", withARN("arn:aws:iam::"+acct+":role/admins"), withUsername("old"), withGroups("system:masters")),
				mapping("acct-b", withAccount(acct), createdAfter(time.Minute)),
				mapping("acct-a", withAccount(acct), createdAfter(time.Minute)),
				mapping("alice-2", withARN("arn:aws:iam::"+acct+":user/ALICE"), withUsername("alice2")),
				mapping("alice-1", withARN("arn:aws:iam::"+acct+":user/alice"), withUsername("alice1")),
			},
			shadowed: []string{"admins-new", "acct-b", "alice-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := awsauth.Resolve(tt.mappings)
			var want []item
			for _, m := range tt.mappings {
				out := res.Outcomes[m.Name]
				if out.Err != nil {
					t.Fatalf("mapping %s is refused: %v", m.Name, out.Err)
				}
				isShadowed := false
				for _, s := range tt.shadowed {
					isShadowed = isShadowed || s == m.Name
				}
				if isShadowed != (out.ShadowedBy != "") {
					t.Errorf("mapping %s: ShadowedBy = %q, want it shadowed: %t", m.Name, out.ShadowedBy, isShadowed)
				}
				if !isShadowed {
					want = append(want, expectedItem(m))
				}
			}
			rendered, err := awsauth.Render(res.Entries)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			requireServes(t, tt.name, rendered.Data, want)
		})
	}
}
