package oracle

import (
	"slices"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// TestParseAgreesWithAuthenticator feeds hand-written aws-auth data, much
// of it broken the ways people break it, to awsauth.Parse and to the
// authenticator: both must read the same entries. The entries the
// authenticator serves that a mapping cannot represent (an sso matcher, a
// userid) must be reported by Parse as errors instead.
func TestParseAgreesWithAuthenticator(t *testing.T) {
	t.Parallel()
	const (
		role  = "arn:aws:iam::111122223333:role/admins"
		role2 = "arn:aws:iam::111122223333:role/ops/nodes"
		user  = "arn:aws:iam::111122223333:user/alice"
		user2 = "arn:aws:iam::111122223333:user/eng/bob"
	)
	goodRoles := "- rolearn: " + role + "\n  username: admin:{{SessionName}}\n  groups:\n    - system:masters\n" +
		"- rolearn: " + role2 + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n"
	goodUsers := "- userarn: " + user + "\n  username: alice\n  groups: [devs]\n- userarn: " + user2 + "\n  username: bob\n"
	goodAccounts := "- \"111122223333\"\n- 444455556666\n"

	tests := []struct {
		name string
		data map[string]string
	}{
		{name: "nil", data: nil},
		{name: "empty", data: map[string]string{}},
		{name: "all good", data: map[string]string{"mapRoles": goodRoles, "mapUsers": goodUsers, "mapAccounts": goodAccounts}},
		{name: "EKS default node role", data: map[string]string{"mapRoles": "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::111122223333:role/eks-node\n  username: system:node:{{EC2PrivateDNSName}}\n"}},
		{name: "JSON list", data: map[string]string{"mapRoles": `[{"rolearn":"` + role + `","username":"a","groups":["x"]}]`, "mapUsers": ` [{"userarn":"` + user + `","username":"u"}]`}},
		{name: "JSON object instead of a list", data: map[string]string{"mapRoles": `{"rolearn":"` + role + `","username":"a"}`, "mapUsers": goodUsers}},
		{name: "YAML map instead of a list", data: map[string]string{"mapRoles": "rolearn: " + role + "\nusername: a\n", "mapUsers": goodUsers}},
		{name: "flow style", data: map[string]string{"mapRoles": "[{rolearn: " + role + ", username: a, groups: [x, y]}]", "mapAccounts": "[111122223333, '444455556666']"}},
		{name: "unterminated flow in mapRoles", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: [a\n", "mapUsers": goodUsers, "mapAccounts": goodAccounts}},
		{name: "tab indentation in mapUsers", data: map[string]string{"mapRoles": goodRoles, "mapUsers": "- userarn: " + user + "\n\tusername: alice\n", "mapAccounts": goodAccounts}},
		{name: "bad indentation in mapRoles", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n username: a\n   groups:\n  - x\n", "mapUsers": goodUsers}},
		{name: "mapAccounts is a map", data: map[string]string{"mapRoles": goodRoles, "mapAccounts": "a: b\n"}},
		{name: "mapAccounts holds a map", data: map[string]string{"mapRoles": goodRoles, "mapAccounts": "- a: b\n"}},
		{name: "mapAccounts numbers", data: map[string]string{"mapAccounts": "- 012345678901\n- 1.2e3\n- 0x10\n- true\n- ~\n"}},
		{name: "mapAccounts scalar", data: map[string]string{"mapAccounts": "111122223333"}},
		{name: "skippable values", data: map[string]string{"mapRoles": "''", "mapUsers": `""`, "mapAccounts": "``"}},
		{name: "blank values", data: map[string]string{"mapRoles": "", "mapUsers": "  \n", "mapAccounts": "\t"}},
		{name: "null and empty lists", data: map[string]string{"mapRoles": "null", "mapUsers": "[]", "mapAccounts": "~"}},
		{name: "scalars", data: map[string]string{"mapRoles": "5", "mapUsers": "true", "mapAccounts": "[]"}},
		{name: "keys in the wrong case", data: map[string]string{"maproles": goodRoles, "MapUsers": goodUsers, "mapaccounts": goodAccounts}},
		{name: "field names in another case", data: map[string]string{"mapRoles": "- RoleARN: " + role + "\n  UserName: a\n  Groups: [x]\n", "mapUsers": "- UserArn: " + user + "\n  USERNAME: u\n"}},
		{name: "unknown fields", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: a\n  note: hello\n  extra: [1, 2]\n"}},
		{name: "sso matcher", data: map[string]string{"mapRoles": "- sso:\n    permissionSetName: Admin\n    accountID: \"111122223333\"\n  username: sso:{{SessionName}}\n  groups: [admins]\n" + goodRoles}},
		{name: "sso matcher with a partition", data: map[string]string{"mapRoles": "- sso: {permissionSetName: ReadOnly, accountID: '111122223333', partition: aws-cn}\n  username: ro\n"}},
		{name: "sso matcher and rolearn", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  sso: {permissionSetName: Admin, accountID: '111122223333'}\n  username: a\n"}},
		{name: "invalid sso matcher", data: map[string]string{"mapRoles": "- sso: {permissionSetName: 'bad name', accountID: '123'}\n  username: a\n" + goodRoles}},
		{name: "empty sso matcher", data: map[string]string{"mapRoles": "- sso: {}\n  username: a\n"}},
		{name: "null sso next to rolearn", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  sso: null\n  username: a\n"}},
		{name: "empty sso next to rolearn", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  sso:\n  username: a\n"}},
		{name: "sso as a string", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  sso: yes\n  username: a\n"}},
		{name: "userid on a role", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  userid: AROAEXAMPLEID\n  username: a\n" + "- rolearn: arn:aws:iam::111122223333:role/other\n  username: b\n"}},
		{name: "userid on a user", data: map[string]string{"mapUsers": "- userarn: " + user + "\n  userid: AIDAEXAMPLEID\n  username: a\n- userarn: " + user2 + "\n  username: b\n"}},
		{name: "empty userid", data: map[string]string{"mapUsers": "- userarn: " + user + "\n  userid: ''\n  username: a\n"}},
		{name: "no rolearn", data: map[string]string{"mapRoles": "- username: nobody\n  groups: [x]\n" + goodRoles}},
		{name: "no userarn", data: map[string]string{"mapUsers": goodUsers + "- username: nobody\n"}},
		{name: "empty rolearn", data: map[string]string{"mapRoles": "- rolearn: ''\n  username: nobody\n"}},
		{name: "no username", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  groups: [x]\n", "mapUsers": "- userarn: " + user + "\n"}},
		{name: "username is a list", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: [a, b]\n- rolearn: " + role2 + "\n  username: c\n"}},
		{name: "username is a number", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: 123\n"}},
		{name: "username is a boolean", data: map[string]string{"mapUsers": "- userarn: " + user + "\n  username: yes\n"}},
		{name: "groups is a string", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: a\n  groups: system:masters\n" + "- rolearn: " + role2 + "\n  username: b\n"}},
		{name: "groups holds null", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: a\n  groups: [x, null, y]\n"}},
		{name: "entry is a string", data: map[string]string{"mapRoles": "- " + role + "\n" + goodRoles}},
		{name: "entry is null", data: map[string]string{"mapUsers": "-\n" + goodUsers}},
		{name: "duplicate keys in an entry", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  rolearn: " + role2 + "\n  username: a\n"}},
		{name: "duplicate entries", data: map[string]string{"mapRoles": goodRoles + goodRoles, "mapAccounts": goodAccounts + goodAccounts}},
		{name: "same ARN in another case", data: map[string]string{"mapUsers": "- userarn: " + user + "\n  username: a\n- userarn: arn:aws:iam::111122223333:user/ALICE\n  username: b\n"}},
		{name: "anchors and aliases", data: map[string]string{"mapRoles": "- &admin\n  rolearn: " + role + "\n  username: a\n- <<: *admin\n  rolearn: " + role2 + "\n"}},
		{name: "comments", data: map[string]string{"mapRoles": "# managed by hand\n- rolearn: " + role + " # admins\n  username: a\n  # groups: [system:masters]\n"}},
		{name: "CRLF line endings", data: map[string]string{"mapRoles": "- rolearn: " + role + "\r\n  username: a\r\n  groups:\r\n  - x\r\n", "mapAccounts": "- 111122223333\r\n"}},
		{name: "byte order mark", data: map[string]string{"mapRoles": "\ufeff- rolearn: " + role + "\n  username: a\n"}},
		{name: "two documents", data: map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: a\n---\n- rolearn: " + role2 + "\n  username: b\n"}},
		{name: "document markers", data: map[string]string{"mapRoles": "---\n- rolearn: " + role + "\n  username: a\n...\n"}},
		{name: "quoted and block scalars", data: map[string]string{"mapRoles": "- rolearn: \"" + role + "\"\n  username: |-\n    a\n  groups: ['null', \"true\", '123']\n"}},
		{name: "unquoted misreadable usernames", data: map[string]string{"mapUsers": "- userarn: " + user + "\n  username: null\n- userarn: " + user2 + "\n  username: ~\n"}},
		{name: "whole section is a string of YAML", data: map[string]string{"mapRoles": "|\n  - rolearn: " + role + "\n"}},
		{name: "mapRoles nested list", data: map[string]string{"mapRoles": "- - rolearn: " + role + "\n    username: a\n"}},
		{name: "invalid everywhere", data: map[string]string{"mapRoles": "[", "mapUsers": "{", "mapAccounts": "- [\n"}},
		{name: "other keys are ignored", data: map[string]string{"mapRoles": goodRoles, "mapGroups": "- x", "": "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			auth := readWithAuthenticator(tt.data)
			entries, errs := awsauth.Parse(tt.data)

			got, want := sortItems(itemsOf(entries)), sortItems(auth.items)
			if !slices.Equal(got, want) {
				t.Errorf("awsauth.Parse reads\n%s\nthe authenticator serves\n%s\nunrepresentable: %v\nParse errors: %v\nauthenticator error: %v\ndata:\n%s",
					lines(got), lines(want), auth.unrepresentable, errs, auth.err, dump(tt.data))
			}
			// Every entry the authenticator would serve but Parse leaves
			// out must come with an error from Parse, and Parse must call
			// data with errors what the authenticator calls broken.
			if wantErrs := auth.err != nil || len(auth.unrepresentable) > 0; wantErrs != (len(errs) > 0) {
				t.Errorf("Parse errors %v; the authenticator's error %v and unrepresentable entries %v", errs, auth.err, auth.unrepresentable)
			}
			if len(errs) < len(auth.unrepresentable) {
				t.Errorf("Parse reports %d errors for %d entries it cannot represent: %v", len(errs), len(auth.unrepresentable), errs)
			}
		})
	}
}
