package awsauth_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

func TestMappingEntry(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	admins := roleARN(acct, "admins")
	alice := userARN(acct, "alice")
	manyGroups := func(n int) []string {
		g := make([]string, n)
		for i := range g {
			g[i] = fmt.Sprintf("team-%d", i)
		}
		return g
	}
	tests := []struct {
		name    string
		mapping awsauth.Mapping
		want    awsauth.Entry
		wantErr []string
	}{
		{
			name:    "role",
			mapping: mapping("a", withARN(admins), withUsername("admin:{{SessionName}}"), withGroups("system:masters")),
			want:    roleEntry(admins, "admin:{{SessionName}}", "system:masters"),
		},
		{
			name:    "role with path is rendered without it",
			mapping: mapping("a", withARN(roleARN(acct, "ops/admins")), withUsername("admin")),
			want:    roleEntry(admins, "admin"),
		},
		{
			name:    "node role",
			mapping: mapping("nodes", withARN(roleARN(acct, "eks-nodes")), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
			want:    roleEntry(roleARN(acct, "eks-nodes"), "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		},
		{
			name:    "user keeps its path",
			mapping: mapping("a", withARN(userARN(acct, "eng/alice")), withUsername("alice"), withGroups("eng")),
			want:    userEntry(userARN(acct, "eng/alice"), "alice", "eng"),
		},
		{
			name:    "user without groups",
			mapping: mapping("a", withARN(alice), withUsername("alice"), withGroups()),
			want:    userEntry(alice, "alice"),
		},
		{
			name:    "every general template",
			mapping: mapping("a", withARN(alice), withUsername("{{AccountID}}:{{SessionName}}:{{SessionNameRaw}}:{{AccessKeyID}}"), withGroups("g-{{AccountID}}")),
			want:    userEntry(alice, "{{AccountID}}:{{SessionName}}:{{SessionNameRaw}}:{{AccessKeyID}}", "g-{{AccountID}}"),
		},
		{
			name:    "single braces are not templates",
			mapping: mapping("a", withARN(alice), withUsername("{alice}"), withGroups("}{")),
			want:    userEntry(alice, "{alice}", "}{"),
		},
		{
			name:    "unicode username",
			mapping: mapping("a", withARN(alice), withUsername("アリス:ü")),
			want:    userEntry(alice, "アリス:ü"),
		},
		{
			name:    "exactly the maximum groups and lengths",
			mapping: mapping("a", withARN(alice), withUsername(strings.Repeat("u", 256)), withGroups(append(manyGroups(15), strings.Repeat("g", 128))...)),
			want:    userEntry(alice, strings.Repeat("u", 256), append(manyGroups(15), strings.Repeat("g", 128))...),
		},
		{
			name:    "account",
			mapping: mapping("a", withAccount(acct)),
			want:    accountEntry(acct),
		},

		{name: "account ID template before the prefix", mapping: mapping("a", withARN(admins), withUsername("{{AccountID}}:{{SessionName}}")), want: roleEntry(admins, "{{AccountID}}:{{SessionName}}")},
		{name: "session name as the whole username", mapping: mapping("a", withARN(admins), withUsername("{{SessionName}}")), wantErr: []string{"username", "fixed prefix", "team:{{SessionName}}"}},
		{name: "session name before the first colon", mapping: mapping("a", withARN(admins), withUsername("{{SessionName}}:admin")), wantErr: []string{"username", "fixed prefix"}},
		{name: "raw session name glued to a prefix", mapping: mapping("a", withARN(admins), withUsername("sys{{SessionNameRaw}}:x")), wantErr: []string{"username", "fixed prefix"}},
		{name: "access key ID without a colon", mapping: mapping("a", withARN(alice), withUsername("key-{{AccessKeyID}}")), wantErr: []string{"username", "fixed prefix"}},
		{name: "only an account ID and a session name", mapping: mapping("a", withARN(admins), withUsername("{{AccountID}}{{SessionName}}")), wantErr: []string{"username", "fixed prefix"}},
		{name: "both arn and accountID", mapping: mapping("a", withARN(admins), withUsername("admin"), withAccount(acct)), wantErr: []string{"arn", "accountID", "exactly one"}},
		{name: "neither arn nor accountID", mapping: mapping("a", withUsername("admin")), wantErr: []string{"arn", "accountID"}},
		{name: "accountID with username", mapping: mapping("a", withAccount(acct), withUsername("admin")), wantErr: []string{"username", "accountID"}},
		{name: "accountID with groups", mapping: mapping("a", withAccount(acct), withGroups("g")), wantErr: []string{"groups", "accountID"}},
		{name: "invalid accountID", mapping: mapping("a", withAccount("1234")), wantErr: []string{`"1234"`, "12 digits"}},
		{name: "invalid arn", mapping: mapping("a", withARN("arn:aws:sts::111122223333:assumed-role/admins/s"), withUsername("admin")), wantErr: []string{admins}},
		{name: "empty username", mapping: mapping("a", withARN(admins)), wantErr: []string{"username is required"}},
		{name: "unknown template", mapping: mapping("a", withARN(admins), withUsername("admin:{{Foo}}")), wantErr: []string{"username", "{{Foo}}", "{{SessionName}}"}},
		{name: "template with spaces", mapping: mapping("a", withARN(admins), withUsername("admin:{{ SessionName }}")), wantErr: []string{"{{ SessionName }}"}},
		{name: "template in lower case", mapping: mapping("a", withARN(admins), withUsername("admin:{{sessionname}}")), wantErr: []string{"{{sessionname}}"}},
		{name: "unbalanced opening", mapping: mapping("a", withARN(admins), withUsername("admin:{{SessionName")), wantErr: []string{"username", "{{"}},
		{name: "unbalanced closing", mapping: mapping("a", withARN(admins), withUsername("admin:SessionName}}")), wantErr: []string{"username", "}}"}},
		{name: "nested template", mapping: mapping("a", withARN(admins), withUsername("{{{{SessionName}}}}")), wantErr: []string{"username"}},
		{name: "unknown template in a group", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups("ok", "g:{{Foo}}")), wantErr: []string{"groups[1]", "{{Foo}}"}},
		{name: "EC2PrivateDNSName for a user", mapping: mapping("a", withARN(alice), withUsername("system:node:{{EC2PrivateDNSName}}")), wantErr: []string{"username", "{{EC2PrivateDNSName}}", "role"}},
		{name: "EC2PrivateDNSName in a user's group", mapping: mapping("a", withARN(alice), withUsername("alice"), withGroups("{{EC2PrivateDNSName}}")), wantErr: []string{"groups[0]", "{{EC2PrivateDNSName}}"}},
		{name: "newline in username", mapping: mapping("a", withARN(admins), withUsername("admin\nsystem:masters")), wantErr: []string{"username", "control character"}},
		{name: "tab in username", mapping: mapping("a", withARN(admins), withUsername("admin\t")), wantErr: []string{"username", "control character"}},
		{name: "NUL in a group", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups("a\x00b")), wantErr: []string{"groups[0]", "control character"}},
		{name: "DEL in username", mapping: mapping("a", withARN(admins), withUsername("admin\x7f")), wantErr: []string{"username", "control character"}},
		{name: "NEL in username", mapping: mapping("a", withARN(admins), withUsername("admin\u0085x")), wantErr: []string{"username", "control character"}},
		{name: "C1 control in a group", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups("a\u009bb")), wantErr: []string{"groups[0]", "control character"}},
		{name: "invalid UTF-8 in a group", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups("ok", "\xef")), wantErr: []string{"groups[1]", "UTF-8"}},
		{name: "invalid UTF-8 in username", mapping: mapping("a", withARN(admins), withUsername("adm\xc3in")), wantErr: []string{"username", "UTF-8"}},
		{name: "empty group", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups("a", "")), wantErr: []string{"groups[1]", "empty"}},
		{name: "too many groups", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups(manyGroups(17)...)), wantErr: []string{"groups has 17 items; at most 16 are allowed"}},
		{name: "username too long", mapping: mapping("a", withARN(admins), withUsername(strings.Repeat("u", 257))), wantErr: []string{"username", "257", "256"}},
		{name: "group too long", mapping: mapping("a", withARN(admins), withUsername("admin"), withGroups(strings.Repeat("g", 129))), wantErr: []string{"groups[0] is 129 characters long; at most 128 are allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.mapping.Entry()
			if tt.wantErr != nil {
				requireErrorContains(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("Entry(): %v", err)
			}
			if diff := gocmp.Diff(tt.want, got, entryOpts); diff != "" {
				t.Errorf("Entry() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	tests := []struct {
		name     string
		mappings []awsauth.Mapping
		// want is the rendered entries in render order: roles, users,
		// accounts, each by identity without case.
		want []awsauth.Entry
		// shadowed maps each losing mapping to the winner it must name.
		shadowed map[string]string
		// invalid lists the mappings that must carry an error.
		invalid []string
	}{
		{
			name:     "no mappings",
			mappings: nil,
		},
		{
			name: "same ARN in another case: oldest wins",
			mappings: []awsauth.Mapping{
				mapping("a-newer", withARN(roleARN(acct, "admins")), withUsername("new"), createdAfter(time.Hour)),
				mapping("z-older", withARN(roleARN(acct, "Admins")), withUsername("old")),
			},
			want:     []awsauth.Entry{roleEntry(roleARN(acct, "Admins"), "old")},
			shadowed: map[string]string{"a-newer": "z-older"},
		},
		{
			name: "same role through different paths",
			mappings: []awsauth.Mapping{
				mapping("via-ops", withARN(roleARN(acct, "ops/admins")), withUsername("ops"), createdAfter(time.Minute)),
				mapping("via-team", withARN(roleARN(acct, "team/x/admins")), withUsername("team")),
				mapping("no-path", withARN(roleARN(acct, "admins")), withUsername("plain"), createdAfter(2*time.Minute)),
			},
			want:     []awsauth.Entry{roleEntry(roleARN(acct, "admins"), "team")},
			shadowed: map[string]string{"via-ops": "via-team", "no-path": "via-team"},
		},
		{
			name: "same account",
			mappings: []awsauth.Mapping{
				mapping("second", withAccount(acct), createdAfter(time.Second)),
				mapping("first", withAccount(acct)),
			},
			want:     []awsauth.Entry{accountEntry(acct)},
			shadowed: map[string]string{"second": "first"},
		},
		{
			name: "same creation time: first name wins",
			mappings: []awsauth.Mapping{
				mapping("beta", withARN(userARN(acct, "alice")), withUsername("beta")),
				mapping("alpha", withARN(userARN(acct, "ALICE")), withUsername("alpha")),
			},
			want:     []awsauth.Entry{userEntry(userARN(acct, "ALICE"), "alpha")},
			shadowed: map[string]string{"beta": "alpha"},
		},
		{
			name: "user paths are part of the identity",
			mappings: []awsauth.Mapping{
				mapping("a", withARN(userARN(acct, "eng/alice")), withUsername("a")),
				mapping("b", withARN(userARN(acct, "ops/alice")), withUsername("b")),
			},
			want: []awsauth.Entry{userEntry(userARN(acct, "eng/alice"), "a"), userEntry(userARN(acct, "ops/alice"), "b")},
		},
		{
			name: "a role and a user of the same name do not conflict",
			mappings: []awsauth.Mapping{
				mapping("u", withARN(userARN(acct, "admins")), withUsername("u")),
				mapping("r", withARN(roleARN(acct, "admins")), withUsername("r")),
			},
			want: []awsauth.Entry{roleEntry(roleARN(acct, "admins"), "r"), userEntry(userARN(acct, "admins"), "u")},
		},
		{
			name: "an invalid mapping takes no part",
			mappings: []awsauth.Mapping{
				mapping("old-invalid", withARN(roleARN(acct, "admins")), withUsername("x:{{Foo}}")),
				mapping("new-valid", withARN(roleARN(acct, "admins")), withUsername("admin"), createdAfter(time.Hour)),
			},
			want:    []awsauth.Entry{roleEntry(roleARN(acct, "admins"), "admin")},
			invalid: []string{"old-invalid"},
		},
		{
			name: "entries come out in render order",
			mappings: []awsauth.Mapping{
				mapping("acct-2", withAccount("999988887777")),
				mapping("user-b", withARN(userARN(acct, "bob")), withUsername("bob")),
				mapping("role-z", withARN(roleARN(acct, "Zeta")), withUsername("z")),
				mapping("acct-1", withAccount("000011112222")),
				mapping("user-a", withARN(userARN(acct, "Alice")), withUsername("alice")),
				mapping("role-a", withARN(roleARN(acct, "alpha")), withUsername("a")),
				mapping("role-b", withARN(roleARN(acct, "Beta")), withUsername("b")),
				mapping("role-other-account", withARN(roleARN("000000000001", "zz")), withUsername("o")),
			},
			want: []awsauth.Entry{
				roleEntry(roleARN("000000000001", "zz"), "o"),
				roleEntry(roleARN(acct, "alpha"), "a"),
				roleEntry(roleARN(acct, "Beta"), "b"),
				roleEntry(roleARN(acct, "Zeta"), "z"),
				userEntry(userARN(acct, "Alice"), "alice"),
				userEntry(userARN(acct, "bob"), "bob"),
				accountEntry("000011112222"),
				accountEntry("999988887777"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The outcome must not depend on the order the mappings are listed in.
			for _, mappings := range [][]awsauth.Mapping{tt.mappings, reversed(tt.mappings)} {
				res := awsauth.Resolve(mappings)
				if diff := gocmp.Diff(tt.want, res.Entries, entryOpts); diff != "" {
					t.Errorf("Entries mismatch (-want +got):\n%s", diff)
				}
				if len(res.Outcomes) != len(mappings) {
					t.Errorf("got %d outcomes for %d mappings", len(res.Outcomes), len(mappings))
				}
				for _, m := range mappings {
					out, ok := res.Outcomes[m.Name]
					if !ok {
						t.Errorf("no outcome for %s", m.Name)
						continue
					}
					if got, want := out.ShadowedBy, tt.shadowed[m.Name]; got != want {
						t.Errorf("%s: ShadowedBy = %q, want %q", m.Name, got, want)
					}
					if got, want := out.Err != nil, slices.Contains(tt.invalid, m.Name); got != want {
						t.Errorf("%s: Err = %v, want an error: %t", m.Name, out.Err, want)
					}
					if out.Err == nil {
						want, _ := m.Entry()
						if diff := gocmp.Diff(want, out.Entry, entryOpts); diff != "" {
							t.Errorf("%s: Outcome.Entry mismatch (-want +got):\n%s", m.Name, diff)
						}
					}
				}
			}
		})
	}
}

func reversed[T any](s []T) []T {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}
