package awsauth_test

import (
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	admins := roleARN(acct, "admins")
	alice := userARN(acct, "alice")
	rolesYAML := "- rolearn: " + admins + "\n  username: admin\n  groups:\n  - system:masters\n"
	usersYAML := "- userarn: " + alice + "\n  username: alice\n"
	tests := []struct {
		name string
		data map[string]string
		want []awsauth.Entry
		// wantErrs holds, per expected error, what it must mention.
		wantErrs [][]string
	}{
		{
			name: "nothing",
			data: nil,
		},
		{
			name: "every section",
			data: map[string]string{"mapRoles": rolesYAML, "mapUsers": usersYAML, "mapAccounts": "- \"444455556666\"\n"},
			want: []awsauth.Entry{roleEntry(admins, "admin", "system:masters"), userEntry(alice, "alice"), accountEntry("444455556666")},
		},
		{
			name: "unquoted account IDs",
			data: map[string]string{"mapAccounts": "- 444455556666\n- 012345678901\n- '000000000001'\n"},
			want: []awsauth.Entry{accountEntry("000000000001"), accountEntry("012345678901"), accountEntry("444455556666")},
		},
		{
			name: "accounts in flow style",
			data: map[string]string{"mapAccounts": "[444455556666, \"111122223333\"]"},
			want: []awsauth.Entry{accountEntry("111122223333"), accountEntry("444455556666")},
		},
		{
			name: "entries as JSON",
			data: map[string]string{"mapRoles": `[{"rolearn": "` + admins + `", "username": "admin", "groups": ["a", "b"]}]`},
			want: []awsauth.Entry{roleEntry(admins, "admin", "a", "b")},
		},
		{
			name: "entries in the order of the render",
			data: map[string]string{
				"mapRoles": "- rolearn: " + roleARN(acct, "zeta") + "\n  username: z\n- rolearn: " + roleARN(acct, "Alpha") + "\n  username: a\n",
				"mapUsers": "- userarn: " + userARN(acct, "bob") + "\n  username: b\n- userarn: " + alice + "\n  username: alice\n",
			},
			want: []awsauth.Entry{
				roleEntry(roleARN(acct, "Alpha"), "a"), roleEntry(roleARN(acct, "zeta"), "z"),
				userEntry(alice, "alice"), userEntry(userARN(acct, "bob"), "b"),
			},
		},
		{
			name: "usernames YAML would misread, quoted",
			data: map[string]string{"mapUsers": "- userarn: " + alice + "\n  username: \"true\"\n  groups: ['123', \"null\", '- x']\n"},
			want: []awsauth.Entry{userEntry(alice, "true", "123", "null", "- x")},
		},
		{
			name: "a role path is kept as written",
			data: map[string]string{"mapRoles": "- rolearn: " + roleARN(acct, "ops/admins") + "\n  username: admin\n"},
			want: []awsauth.Entry{roleEntry(roleARN(acct, "ops/admins"), "admin")},
		},
		{
			name: "empty groups",
			data: map[string]string{"mapRoles": "- rolearn: " + admins + "\n  username: admin\n  groups: []\n"},
			want: []awsauth.Entry{roleEntry(admins, "admin")},
		},
		{
			name: "keys in another case are not read",
			data: map[string]string{"maproles": rolesYAML, "MapUsers": usersYAML, "mapaccounts": "- \"444455556666\"\n"},
		},
		{
			name: "sso entry is reported, the others kept",
			data: map[string]string{
				"mapRoles": "- sso:\n    permissionSetName: Admin\n    accountID: \"" + acct + "\"\n  username: sso-admin\n" + rolesYAML,
				"mapUsers": usersYAML,
			},
			want:     []awsauth.Entry{roleEntry(admins, "admin", "system:masters"), userEntry(alice, "alice")},
			wantErrs: [][]string{{"mapRoles[0]", "sso"}},
		},
		{
			name: "a null sso is no matcher",
			data: map[string]string{"mapRoles": "- rolearn: " + admins + "\n  sso: null\n  username: a\n- rolearn: " + roleARN(acct, "b") + "\n  sso:\n  username: b\n"},
			want: []awsauth.Entry{roleEntry(admins, "a"), roleEntry(roleARN(acct, "b"), "b")},
		},
		{
			name:     "an empty sso matcher is reported",
			data:     map[string]string{"mapRoles": "- rolearn: " + admins + "\n  sso: {}\n  username: a\n"},
			wantErrs: [][]string{{"mapRoles[0]", "sso"}},
		},
		{
			name: "userid on a role and a user is reported, the others kept",
			data: map[string]string{
				"mapRoles": rolesYAML + "- rolearn: " + roleARN(acct, "other") + "\n  userid: AROAEXAMPLE\n  username: other\n",
				"mapUsers": "- userarn: " + userARN(acct, "bob") + "\n  userid: AIDAEXAMPLE\n  username: bob\n" + usersYAML,
			},
			want:     []awsauth.Entry{roleEntry(admins, "admin", "system:masters"), userEntry(alice, "alice")},
			wantErrs: [][]string{{"mapRoles[1]", "userid"}, {"mapUsers[0]", "userid"}},
		},
		{
			name:     "entries without an ARN are reported",
			data:     map[string]string{"mapRoles": "- username: nobody\n" + rolesYAML, "mapUsers": usersYAML + "- username: nobody\n"},
			want:     []awsauth.Entry{roleEntry(admins, "admin", "system:masters"), userEntry(alice, "alice")},
			wantErrs: [][]string{{"mapRoles[0]", "rolearn"}, {"mapUsers[1]", "userarn"}},
		},
		{
			name:     "invalid YAML in mapRoles keeps the other sections",
			data:     map[string]string{"mapRoles": "- rolearn: " + admins + "\n  username: [admin\n", "mapUsers": usersYAML, "mapAccounts": "- 444455556666\n"},
			want:     []awsauth.Entry{userEntry(alice, "alice"), accountEntry("444455556666")},
			wantErrs: [][]string{{"mapRoles"}},
		},
		{
			name:     "tab-indented mapUsers keeps the other sections",
			data:     map[string]string{"mapRoles": rolesYAML, "mapUsers": "- userarn: " + alice + "\n\tusername: alice\n", "mapAccounts": "- 444455556666\n"},
			want:     []awsauth.Entry{roleEntry(admins, "admin", "system:masters"), accountEntry("444455556666")},
			wantErrs: [][]string{{"mapUsers"}},
		},
		{
			name:     "mapRoles that is a map, not a list",
			data:     map[string]string{"mapRoles": "rolearn: " + admins + "\nusername: admin\n", "mapUsers": usersYAML},
			want:     []awsauth.Entry{userEntry(alice, "alice")},
			wantErrs: [][]string{{"mapRoles"}},
		},
		{
			name:     "invalid mapAccounts keeps the other sections",
			data:     map[string]string{"mapRoles": rolesYAML, "mapAccounts": "- a: b\n"},
			want:     []awsauth.Entry{roleEntry(admins, "admin", "system:masters")},
			wantErrs: [][]string{{"mapAccounts"}},
		},
		{
			name:     "every section invalid",
			data:     map[string]string{"mapRoles": "[", "mapUsers": "{", "mapAccounts": "]"},
			wantErrs: [][]string{{"mapRoles"}, {"mapUsers"}, {"mapAccounts"}},
		},
	}
	for _, skippable := range []string{"", "   ", "\n", "''", `""`, "``", " '' \n", "\t\"\"\t"} {
		tests = append(tests, struct {
			name     string
			data     map[string]string
			want     []awsauth.Entry
			wantErrs [][]string
		}{
			name: "skippable sections " + strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(skippable),
			data: map[string]string{"mapRoles": skippable, "mapUsers": skippable, "mapAccounts": skippable},
		}, struct {
			name     string
			data     map[string]string
			want     []awsauth.Entry
			wantErrs [][]string
		}{
			name: "skippable mapRoles next to others " + strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(skippable),
			data: map[string]string{"mapRoles": skippable, "mapUsers": usersYAML, "mapAccounts": "- 444455556666"},
			want: []awsauth.Entry{userEntry(alice, "alice"), accountEntry("444455556666")},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, errs := awsauth.Parse(tt.data)
			if diff := gocmp.Diff(tt.want, got, entryOpts); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.wantErrs))
			}
			for i, want := range tt.wantErrs {
				requireErrorContains(t, errs[i], want...)
			}
		})
	}
}

// Parse says of each item it rejects where it is, what the authenticator
// stores it under, whether that item is the one served, and why.
func TestParseRejected(t *testing.T) {
	t.Parallel()
	role := "arn:aws:iam::111122223333:role/admins"
	user := "arn:aws:iam::111122223333:user/bob"
	tests := []struct {
		name   string
		data   map[string]string
		want   []awsauth.Rejected // Reason checked by substring
		served int                // entries still returned
	}{
		{"sso matcher", map[string]string{"mapRoles": "- rolearn: " + role + "\n  sso: {permissionSetName: Admin}\n  username: a\n"},
			[]awsauth.Rejected{{Section: awsauth.MapRoles, Index: 0, Reason: "mapRoles[0] uses an sso matcher"}}, 0},
		{"no rolearn", map[string]string{"mapRoles": "- username: a\n- rolearn: " + role + "\n  username: b\n"},
			[]awsauth.Rejected{{Section: awsauth.MapRoles, Index: 0, Reason: "mapRoles[0] has no rolearn"}}, 1},
		{"userid on the last role item: served", map[string]string{"mapRoles": "- rolearn: " + role + "\n  username: a\n- rolearn: " + strings.ToUpper(role[:8]) + role[8:] + "\n  userid: AROAX\n  username: b\n"},
			[]awsauth.Rejected{{Section: awsauth.MapRoles, Index: 1, Identity: "ARN:AWS:" + role[8:], Last: true, Reason: "mapRoles[1] (ARN:AWS:" + role[8:] + ") sets userid"}}, 1},
		{"userid on an earlier role item: replaced by the later", map[string]string{"mapRoles": "- rolearn: " + role + "\n  userid: AROAX\n  username: b\n- rolearn: " + role + "\n  username: a\n"},
			[]awsauth.Rejected{{Section: awsauth.MapRoles, Index: 0, Identity: role, Reason: "sets userid"}}, 1},
		{"no userarn", map[string]string{"mapUsers": "- username: a\n"},
			[]awsauth.Rejected{{Section: awsauth.MapUsers, Index: 0, Reason: "mapUsers[0] has no userarn"}}, 0},
		{"userid on a user; users differing in case are stored apart", map[string]string{"mapUsers": "- userarn: " + user + "\n  userid: AIDAX\n  username: b\n- userarn: " + strings.ToUpper(user) + "\n  username: c\n"},
			[]awsauth.Rejected{{Section: awsauth.MapUsers, Index: 0, Identity: user, Last: true, Reason: "mapUsers[0] (" + user + ") sets userid"}}, 1},
		{"a section that is not YAML", map[string]string{"mapRoles": "- rolearn: [", "mapUsers": "- userarn: " + user + "\n  username: b\n"},
			[]awsauth.Rejected{{Section: awsauth.MapRoles, Index: -1, Reason: "mapRoles is not valid YAML, so the authenticator ignores all of it"}}, 1},
		{"a section that is not a list", map[string]string{"mapUsers": "userarn: " + user + "\n"},
			[]awsauth.Rejected{{Section: awsauth.MapUsers, Index: -1, Reason: "mapUsers is not a list of entries"}}, 0},
		{"mapAccounts that is not a list", map[string]string{"mapAccounts": "a: b\n"},
			[]awsauth.Rejected{{Section: awsauth.MapAccounts, Index: -1, Reason: "mapAccounts is not a list of account IDs"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, rejected := awsauth.Parse(tc.data)
			if len(entries) != tc.served {
				t.Errorf("%d entries, want %d: %+v", len(entries), tc.served, entries)
			}
			if len(rejected) != len(tc.want) {
				t.Fatalf("rejected %+v, want %d", rejected, len(tc.want))
			}
			for i, want := range tc.want {
				got := rejected[i]
				if got.Section != want.Section || got.Index != want.Index || got.Identity != want.Identity || got.Last != want.Last {
					t.Errorf("rejected[%d] = %s[%d] identity %q last %v, want %s[%d] identity %q last %v",
						i, got.Section, got.Index, got.Identity, got.Last, want.Section, want.Index, want.Identity, want.Last)
				}
				if !strings.Contains(got.Error(), want.Reason) {
					t.Errorf("rejected[%d] says %q, want it to contain %q", i, got.Error(), want.Reason)
				}
			}
		})
	}
}
