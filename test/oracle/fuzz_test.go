package oracle

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// FuzzParseAgreesWithAuthenticator is the differential test on arbitrary
// data: Parse and the authenticator read the same entries, and whatever
// Parse reads, once settled, renders into data the authenticator serves.
func FuzzParseAgreesWithAuthenticator(f *testing.F) {
	f.Add("- rolearn: arn:aws:iam::111122223333:role/ops/nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n",
		"- userarn: arn:aws:iam::111122223333:user/alice\n  username: alice\n", "- 111122223333\n")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/a\n  sso: null\n  username: a\n- sso: {permissionSetName: A, accountID: '111122223333'}\n  username: b\n",
		"- userarn: arn:aws:iam::111122223333:user/u\n  userid: AIDA\n  username: u\n", "[012345678901, '1']")
	f.Add(`[{"rolearn": "arn:aws:iam::111122223333:role/r", "username": 1}]`, "{", "- a: b")
	f.Add("- rolearn: x\n\tusername: y\n", "''", "``")
	f.Fuzz(func(t *testing.T, roles, users, accounts string) {
		data := map[string]string{"mapRoles": roles, "mapUsers": users, "mapAccounts": accounts}
		auth := readWithAuthenticator(data)
		entries, errs := awsauth.Parse(data)
		if got, want := sortItems(itemsOf(entries)), sortItems(auth.items); !slices.Equal(got, want) {
			t.Fatalf("awsauth.Parse reads\n%s\nthe authenticator serves\n%s\ndata:\n%s", lines(got), lines(want), dump(data))
		}
		if wantErrs := auth.err != nil || len(auth.unrepresentable) > 0; wantErrs != (len(errs) > 0) {
			t.Fatalf("Parse errors %v; the authenticator's error %v and unrepresentable entries %v\ndata:\n%s", errs, auth.err, auth.unrepresentable, dump(data))
		}

		mappings := make([]awsauth.Mapping, 0, len(entries))
		for _, e := range entries {
			m := awsauth.Mapping{Name: fmt.Sprintf("m%04d", len(mappings)), Username: e.Username, Groups: e.Groups}
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
			t.Fatalf("entries read from the data do not render: %v\ndata:\n%s", err, dump(data))
		}
		requireServes(t, "re-render", rendered.Data, itemsOf(res.Entries))
	})
}
