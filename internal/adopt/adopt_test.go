package adopt_test

import (
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

const acct = "111122223333"

func roleARN(name string) string { return "arn:aws:iam::" + acct + ":role/" + name }
func userARN(name string) string { return "arn:aws:iam::" + acct + ":user/" + name }

// adopted is the part of an adopted mapping a test states: name, then the
// spec as identity, username and groups.
type adopted struct {
	Name     string
	ARN      string
	Account  string
	Username string
	Groups   []string
}

func summarize(ms []iamv1alpha1.IAMIdentityMapping) []adopted {
	var out []adopted
	for _, m := range ms {
		a := adopted{Name: m.Name, ARN: m.Spec.ARN, Account: m.Spec.AccountID, Username: string(m.Spec.Username)}
		for _, g := range m.Spec.Groups {
			a.Groups = append(a.Groups, string(g))
		}
		out = append(out, a)
	}
	return out
}

func TestFromData(t *testing.T) {
	t.Parallel()
	nodeRole := "- rolearn: " + roleARN("eks-node") + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n  - system:bootstrappers\n  - system:nodes\n"
	admins := "- rolearn: " + roleARN("admins") + "\n  username: admin:{{SessionName}}\n  groups:\n  - system:masters\n"
	alice := "- userarn: " + userARN("engineering/alice") + "\n  username: alice\n"
	tests := []struct {
		name string
		data map[string]string
		want []adopted
		// wantUnrepresentable and wantShadowed hold, per expected sentence,
		// what it must mention.
		wantUnrepresentable [][]string
		wantShadowed        [][]string
	}{
		{name: "empty data", data: nil},
		{name: "empty sections", data: map[string]string{"mapRoles": "", "mapUsers": "''", "mapAccounts": "\n"}},
		{
			name: "roles, users and an account",
			data: map[string]string{"mapRoles": nodeRole + admins, "mapUsers": alice + "- userarn: " + userARN("bob") + "\n  username: bob\n  groups: [viewers]\n", "mapAccounts": "- 444455556666\n"},
			want: []adopted{
				{Name: "account-444455556666", Account: "444455556666"},
				{Name: "role-111122223333-admins", ARN: roleARN("admins"), Username: "admin:{{SessionName}}", Groups: []string{"system:masters"}},
				{Name: "role-111122223333-eks-node", ARN: roleARN("eks-node"), Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}},
				{Name: "user-111122223333-bob", ARN: userARN("bob"), Username: "bob", Groups: []string{"viewers"}},
				{Name: "user-111122223333-engineering-alice-" + hash8(userARN("engineering/alice")), ARN: userARN("engineering/alice"), Username: "alice"},
			},
		},
		{
			name: "role duplicated in another case: the last wins",
			data: map[string]string{"mapRoles": admins + "- rolearn: " + roleARN("Admins") + "\n  username: later\n"},
			want: []adopted{
				{Name: "role-111122223333-admins-" + hash8(roleARN("admins")), ARN: roleARN("Admins"), Username: "later"},
			},
			wantShadowed: [][]string{{roleARN("admins"), roleARN("Admins"), "admin:{{SessionName}}", "never served"}},
		},
		{
			name:         "exact duplicate user: the last wins",
			data:         map[string]string{"mapUsers": "- userarn: " + userARN("bob") + "\n  username: first\n- userarn: " + userARN("bob") + "\n  username: second\n"},
			want:         []adopted{{Name: "user-111122223333-bob", ARN: userARN("bob"), Username: "second"}},
			wantShadowed: [][]string{{userARN("bob"), `"first"`}},
		},
		{
			name:         "duplicate accounts",
			data:         map[string]string{"mapAccounts": "- 444455556666\n- '444455556666'\n"},
			want:         []adopted{{Name: "account-444455556666", Account: "444455556666"}},
			wantShadowed: [][]string{{"444455556666"}},
		},
		{
			name:                "users differing in case that disagree",
			data:                map[string]string{"mapUsers": "- userarn: " + userARN("Bob") + "\n  username: a\n- userarn: " + userARN("bob") + "\n  username: b\n"},
			wantUnrepresentable: [][]string{{userARN("Bob"), userARN("bob"), "random"}},
		},
		{
			name:         "users differing in case that agree",
			data:         map[string]string{"mapUsers": "- userarn: " + userARN("Bob") + "\n  username: bob\n- userarn: " + userARN("bob") + "\n  username: bob\n"},
			want:         []adopted{{Name: "user-111122223333-bob-" + hash8(userARN("bob")), ARN: userARN("Bob"), Username: "bob"}},
			wantShadowed: [][]string{{userARN("bob"), userARN("Bob")}},
		},
		{
			name:                "sso entry",
			data:                map[string]string{"mapRoles": "- sso:\n    permissionSetName: Admin\n    accountID: \"" + acct + "\"\n  username: sso\n" + admins},
			want:                []adopted{{Name: "role-111122223333-admins", ARN: roleARN("admins"), Username: "admin:{{SessionName}}", Groups: []string{"system:masters"}}},
			wantUnrepresentable: [][]string{{"mapRoles[0]", "sso"}},
		},
		{
			name:                "userid",
			data:                map[string]string{"mapUsers": "- userarn: " + userARN("bob") + "\n  userid: AIDAEXAMPLE\n  username: bob\n"},
			wantUnrepresentable: [][]string{{userARN("bob"), "userid"}},
		},
		{
			name:                "a later entry with userid shadows an earlier plain one",
			data:                map[string]string{"mapRoles": admins + "- rolearn: " + roleARN("admins") + "\n  userid: AROAEXAMPLE\n  username: other\n"},
			wantUnrepresentable: [][]string{{roleARN("admins"), "userid"}},
			wantShadowed:        [][]string{{roleARN("admins"), "userid", "never served"}},
		},
		{
			name: "an earlier entry with userid is shadowed by a plain one",
			data: map[string]string{"mapRoles": "- rolearn: " + roleARN("admins") + "\n  userid: AROAEXAMPLE\n  username: other\n" + admins},
			want: []adopted{{Name: "role-111122223333-admins", ARN: roleARN("admins"), Username: "admin:{{SessionName}}", Groups: []string{"system:masters"}}},
			// Parse cannot tell that the userid entry is never served; a
			// person confirms.
			wantUnrepresentable: [][]string{{roleARN("admins"), "userid"}},
		},
		{
			name:                "malformed entries",
			data:                map[string]string{"mapRoles": "- rolearn: arn:aws:sts::" + acct + ":assumed-role/admins/me\n  username: a\n- rolearn: " + roleARN("ok") + "\n  username: bad{{Foo}}\n- username: nobody\n", "mapUsers": "- userarn: " + userARN("bob") + "\n", "mapAccounts": "- 1234\n"},
			wantUnrepresentable: [][]string{{"mapRoles[2]", "rolearn"}, {roleARN("ok"), "{{Foo}}"}, {"assumed-role", roleARN("admins")}, {userARN("bob"), "username"}, {"1234", "12 digits"}},
		},
		{
			name:                "a section that is not valid YAML",
			data:                map[string]string{"mapRoles": "- rolearn: " + roleARN("admins") + "\n  username: [admin\n", "mapUsers": alice},
			want:                []adopted{{Name: "user-111122223333-engineering-alice-" + hash8(userARN("engineering/alice")), ARN: userARN("engineering/alice"), Username: "alice"}},
			wantUnrepresentable: [][]string{{"mapRoles", "ignores all of it"}},
		},
		{
			name:                "role with a path",
			data:                map[string]string{"mapRoles": "- rolearn: " + roleARN("team/admins") + "\n  username: admin\n"},
			wantUnrepresentable: [][]string{{roleARN("team/admins"), "path", roleARN("admins"), "on purpose"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := adopt.FromData(tt.data)
			if diff := gocmp.Diff(tt.want, summarize(got.Mappings)); diff != "" {
				t.Errorf("Mappings mismatch (-want +got):\n%s", diff)
			}
			for _, m := range got.Mappings {
				if m.APIVersion != "iam.aws-auth-guardian.dev/v1alpha1" || m.Kind != "IAMIdentityMapping" {
					t.Errorf("%s: TypeMeta = %+v", m.Name, m.TypeMeta)
				}
				if diff := gocmp.Diff(map[string]string{adopt.AdoptedLabel: "true"}, m.Labels); diff != "" {
					t.Errorf("%s: labels mismatch (-want +got):\n%s", m.Name, diff)
				}
			}
			requireSentences(t, "Unrepresentable", got.Unrepresentable, tt.wantUnrepresentable)
			requireSentences(t, "Shadowed", got.Shadowed, tt.wantShadowed)
		})
	}
}

func requireSentences(t *testing.T, what string, got []string, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d sentences %q, want %d", what, len(got), got, len(want))
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(got[i], p) {
				t.Errorf("%s[%d] = %q, want it to mention %q", what, i, got[i], p)
			}
		}
	}
}

func TestFromDataIsDeterministic(t *testing.T) {
	t.Parallel()
	data := map[string]string{
		"mapRoles": "- rolearn: " + roleARN("z") + "\n  username: z\n- rolearn: " + roleARN("a") + "\n  username: a\n- rolearn: " + roleARN("m/x") + "\n  username: x\n",
		"mapUsers": "- userarn: " + userARN("b") + "\n  username: b\n- userarn: " + userARN("a") + "\n  username: a\n",
	}
	first := adopt.FromData(data)
	for range 20 {
		if diff := gocmp.Diff(first, adopt.FromData(data)); diff != "" {
			t.Fatalf("FromData differs between runs:\n%s", diff)
		}
	}
	var names []string
	for _, m := range first.Mappings {
		names = append(names, m.Name)
	}
	want := []string{"role-111122223333-a", "role-111122223333-z", "user-111122223333-a", "user-111122223333-b"}
	if diff := gocmp.Diff(want, names); diff != "" {
		t.Errorf("names mismatch (-want +got):\n%s", diff)
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("p", 60) + "/"
	longUser := userARN(strings.Repeat(long, 5) + "alice")
	tests := []struct {
		name  string
		entry awsauth.Entry
		want  string
	}{
		{name: "role", entry: role(roleARN("admins")), want: "role-111122223333-admins"},
		{name: "role with hyphens and digits", entry: role(roleARN("eks-node-2")), want: "role-111122223333-eks-node-2"},
		{name: "role with uppercase", entry: role(roleARN("Admins")), want: "role-111122223333-admins-" + hash8(roleARN("admins"))},
		{name: "role with punctuation", entry: role(roleARN("a+b=c,d.e@f_g")), want: "role-111122223333-a-b-c-d-e-f-g-" + hash8(roleARN("a+b=c,d.e@f_g"))},
		{name: "role that ends like a hashed name", entry: role(roleARN("foo-bar-0123abcd")), want: "role-111122223333-foo-bar-0123abcd-" + hash8(roleARN("foo-bar-0123abcd"))},
		{name: "role ending in a hyphen", entry: role(roleARN("admins-")), want: "role-111122223333-admins-" + hash8(roleARN("admins-"))},
		{name: "user", entry: user(userARN("alice")), want: "user-111122223333-alice"},
		{name: "user with a path", entry: user(userARN("eng/alice")), want: "user-111122223333-eng-alice-" + hash8(userARN("eng/alice"))},
		{name: "account", entry: awsauth.Entry{Section: awsauth.MapAccounts, Identity: "444455556666"}, want: "account-444455556666"},
		{name: "other partition", entry: role("arn:aws-cn:iam::" + acct + ":role/admins"), want: "role-111122223333-admins-" + hash8("arn:aws-cn:iam::"+acct+":role/admins")},
		{name: "too long", entry: user(longUser), want: ("user-111122223333-" + strings.ReplaceAll(strings.Repeat(long, 5), "/", "-"))[:244] + "-" + hash8(longUser)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := adopt.Name(tt.entry)
			if got != tt.want {
				t.Errorf("Name(%s) = %q, want %q", tt.entry.Identity, got, tt.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("Name(%s) = %q is not a valid object name: %v", tt.entry.Identity, got, errs)
			}
			if again := adopt.Name(tt.entry); again != got {
				t.Errorf("Name is not stable: %q then %q", got, again)
			}
		})
	}
}

// TestNameCollisions: identities the authenticator tells apart never share a
// name, however close their rewrites are.
func TestNameCollisions(t *testing.T) {
	t.Parallel()
	entries := []awsauth.Entry{
		role(roleARN("Foo_Bar")), role(roleARN("foo-bar")), role(roleARN("foo.bar")), role(roleARN("foo@bar")),
		role(roleARN("foo-bar-" + hash8(roleARN("foo.bar")))),
		user(userARN("foo-bar")), user(userARN("foo/bar")), user(userARN("foo/bar-x")), user(userARN("foo-bar/x")), user(userARN("foo/bar/x")),
		role("arn:aws-cn:iam::" + acct + ":role/foo-bar"),
		{Section: awsauth.MapAccounts, Identity: acct},
	}
	seen := map[string]string{}
	for _, e := range entries {
		name := adopt.Name(e)
		if other, taken := seen[name]; taken {
			t.Errorf("%s and %s both get the name %q", other, e.Identity, name)
		}
		seen[name] = e.Identity
	}
	// The same identity in another case is one identity to the
	// authenticator, and so one name.
	if a, b := adopt.Name(role(roleARN("FOO-bar"))), adopt.Name(role(roleARN("foo-BAR"))); a != b {
		t.Errorf("case variants of one role got names %q and %q", a, b)
	}
}

func role(arn string) awsauth.Entry { return awsauth.Entry{Section: awsauth.MapRoles, Identity: arn} }
func user(arn string) awsauth.Entry { return awsauth.Entry{Section: awsauth.MapUsers, Identity: arn} }
