package awsauth_test

import (
	"fmt"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// FuzzRender checks that every mapping the validation accepts renders, and
// that the render reads back as exactly its entry.
func FuzzRender(f *testing.F) {
	f.Add("arn:aws:iam::111122223333:role/eks/nodes", "", "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes", uint8(2))
	f.Add("arn:aws:iam::111122223333:user/alice", "", "true", "null", "- x", uint8(2))
	f.Add("", "111122223333", "", "", "", uint8(0))
	f.Add("arn:aws-cn:iam::111122223333:role/admins", "", "{{AccountID}}:{{SessionName}}", "a: b", "", uint8(1))
	f.Add("arn:aws:iam::111122223333:role/r", "", "'\"`#&*!|>%@", "\u2028", "\ufeff", uint8(2))
	f.Fuzz(func(t *testing.T, arn, accountID, username, group0, group1 string, groupCount uint8) {
		m := awsauth.Mapping{Name: "fuzz", ARN: arn, AccountID: accountID, Username: username}
		m.Groups = []string{group0, group1}[:groupCount%3]
		e, err := m.Entry()
		if err != nil {
			return
		}
		data, err := awsauth.Render([]awsauth.Entry{e})
		if err != nil {
			t.Fatalf("valid mapping %+v does not render: %v", m, err)
		}
		got, errs := awsauth.Parse(data)
		if len(errs) > 0 {
			t.Fatalf("render of %+v does not parse: %v\n%v", m, errs, data)
		}
		if diff := gocmp.Diff([]awsauth.Entry{e}, got, entryOpts); diff != "" {
			t.Fatalf("render of %+v parses back differently (-want +got):\n%s\n%v", m, diff, data)
		}
	})
}

// FuzzParse reads arbitrary aws-auth data. Whatever it reads, once validated
// and settled like a set of mappings, must render and read back the same.
func FuzzParse(f *testing.F) {
	f.Add("- rolearn: arn:aws:iam::111122223333:role/nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n  - system:bootstrappers\n  - system:nodes\n",
		"- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n", "- 111122223333\n")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/a/b\n  username: x\n- rolearn: arn:aws:iam::111122223333:role/B\n  username: y\n- rolearn: arn:aws:iam::111122223333:role/b\n  username: z\n", "''", "[111122223333, '111122223333']")
	f.Add("- sso: {permissionSetName: A, accountID: '111122223333'}\n  username: a\n", "- userid: AIDA\n  userarn: x\n", "- a: b")
	f.Add(`[{"rolearn": "arn:aws:iam::111122223333:role/r", "username": "true", "groups": ["123"]}]`, "{", "")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/r\n  username: [x\n", "- userarn: arn:aws:iam::111122223333:user/u\n  username: \"\\u0085\"\n", "~")
	f.Fuzz(func(t *testing.T, roles, users, accounts string) {
		data := map[string]string{"mapRoles": roles, "mapUsers": users, "mapAccounts": accounts}
		entries, _ := awsauth.Parse(data)

		mappings := make([]awsauth.Mapping, 0, len(entries))
		for i, e := range entries {
			m := awsauth.Mapping{Name: fmt.Sprintf("m%04d", i), Username: e.Username, Groups: e.Groups}
			if e.Section == awsauth.MapAccounts {
				m.AccountID = e.Identity
			} else {
				m.ARN = e.Identity
			}
			mappings = append(mappings, m)
		}
		res := awsauth.Resolve(mappings)
		rendered, err := awsauth.Render(res.Entries)
		if err != nil {
			t.Fatalf("entries read from %q do not render: %v", data, err)
		}
		back, errs := awsauth.Parse(rendered)
		if len(errs) > 0 {
			t.Fatalf("render %q does not parse: %v", rendered, errs)
		}
		if diff := gocmp.Diff(res.Entries, back, entryOpts); diff != "" {
			t.Fatalf("render %q parses back differently (-want +got):\n%s", rendered, diff)
		}
	})
}
