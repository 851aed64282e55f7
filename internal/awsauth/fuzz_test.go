package awsauth_test

import (
	"fmt"
	"strings"
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
	// Long values with spaces, which a YAML encoder may fold over lines.
	f.Add("arn:aws:iam::111122223333:user/"+strings.Repeat("p/", 900)+"alice", "", strings.Repeat("word ", 51), strings.Repeat("g h ", 32), "", uint8(1))
	f.Fuzz(func(t *testing.T, arn, accountID, username, group0, group1 string, groupCount uint8) {
		m := awsauth.Mapping{Name: "fuzz", ARN: arn, AccountID: accountID, Username: username}
		m.Groups = []string{group0, group1}[:groupCount%3]
		e, err := m.Entry()
		if err != nil {
			return
		}
		data, err := renderData([]awsauth.Entry{e})
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

		// Fit's size of the entry is what it adds to a render, alone or
		// next to another entry of its section.
		size, err := awsauth.EntryBytes(e)
		if err != nil {
			t.Fatalf("EntryBytes(%+v): %v", e, err)
		}
		if got := awsauth.DataSize(data); got != size+len(e.Section) {
			t.Fatalf("render of %+v is %d bytes, Fit counts %d plus the key", m, got, size)
		}
		other := awsauth.Entry{Section: e.Section, Identity: "000000000000", Username: "x", Groups: []string{"y"}}
		if e.Section != awsauth.MapAccounts {
			other.Identity = "arn:aws:iam::000000000000:" + map[awsauth.Section]string{awsauth.MapRoles: "role", awsauth.MapUsers: "user"}[e.Section] + "/other"
		} else {
			other.Username, other.Groups = "", nil
		}
		if strings.EqualFold(other.Identity, e.Identity) {
			return
		}
		otherSize, _ := awsauth.EntryBytes(other)
		both, err := renderData([]awsauth.Entry{e, other})
		if err != nil {
			t.Fatalf("Render of %+v and %+v: %v", e, other, err)
		}
		if got := awsauth.DataSize(both); got != size+otherSize+len(e.Section) {
			t.Fatalf("render of %+v next to %+v is %d bytes, Fit counts %d + %d plus the key", m, other, got, size, otherSize)
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
		rendered, err := renderData(res.Entries)
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
