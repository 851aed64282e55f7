package oracle

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth/awsauthtest"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
)

// The builders are shared with the other test packages.
var (
	epoch        = awsauthtest.Epoch
	mapping      = awsauthtest.Mapping
	withARN      = awsauthtest.WithARN
	withUsername = awsauthtest.WithUsername
	withGroups   = awsauthtest.WithGroups
	withAccount  = awsauthtest.WithAccount
	createdAfter = awsauthtest.CreatedAfter
)

// item is one entry as the authenticator serves it, reduced to what a
// mapping can say.
type item struct {
	Section  string
	Identity string
	Username string
	Groups   string // joined, so that nil and empty compare alike
}

func (i item) String() string {
	return fmt.Sprintf("%s %s username=%q groups=[%s]", i.Section, i.Identity, i.Username, i.Groups)
}

func joinGroups(g []string) string { return strings.Join(g, "\x1f") }

// sortItems puts items in a fixed order of the test's own choosing.
func sortItems(items []item) []item {
	return slices.SortedFunc(slices.Values(items), func(a, b item) int {
		return cmp.Or(strings.Compare(a.Section, b.Section), strings.Compare(strings.ToLower(a.Identity), strings.ToLower(b.Identity)), strings.Compare(a.Identity, b.Identity))
	})
}

// expectedItem is what the authenticator must serve for a valid mapping,
// worked out here from the design rules rather than by the code under
// test: a role loses its path, a user keeps it.
func expectedItem(m awsauth.Mapping) item {
	if m.AccountID != "" {
		return item{Section: "mapAccounts", Identity: m.AccountID}
	}
	if before, after, ok := strings.Cut(m.ARN, ":role/"); ok {
		return item{Section: "mapRoles", Identity: before + ":role/" + after[strings.LastIndex(after, "/")+1:], Username: m.Username, Groups: joinGroups(m.Groups)}
	}
	return item{Section: "mapUsers", Identity: m.ARN, Username: m.Username, Groups: joinGroups(m.Groups)}
}

// authenticatorView is what aws-iam-authenticator reads from the data, in
// the order it reads it, with the entries it would serve but this project
// cannot represent (sso matchers, user IDs) set apart.
type authenticatorView struct {
	items           []item
	unrepresentable []string
	err             error
	roles, users    int
	accounts        int
}

func readWithAuthenticator(data map[string]string) authenticatorView {
	users, roles, accounts, err := configmap.ParseMap(data)
	v := authenticatorView{err: err, roles: len(roles), users: len(users), accounts: len(accounts)}
	for _, r := range roles {
		if r.SSO != nil || r.UserId != "" {
			v.unrepresentable = append(v.unrepresentable, describeRole(r))
			continue
		}
		v.items = append(v.items, item{Section: "mapRoles", Identity: r.RoleARN, Username: r.Username, Groups: joinGroups(r.Groups)})
	}
	for _, u := range users {
		if u.UserId != "" {
			v.unrepresentable = append(v.unrepresentable, fmt.Sprintf("user %s userid %s", u.UserARN, u.UserId))
			continue
		}
		v.items = append(v.items, item{Section: "mapUsers", Identity: u.UserARN, Username: u.Username, Groups: joinGroups(u.Groups)})
	}
	for _, a := range accounts {
		v.items = append(v.items, item{Section: "mapAccounts", Identity: a})
	}
	return v
}

func describeRole(r config.RoleMapping) string {
	if r.SSO != nil {
		return fmt.Sprintf("role sso %+v", *r.SSO)
	}
	return fmt.Sprintf("role %s userid %s", r.RoleARN, r.UserId)
}

func itemsOf(entries []awsauth.Entry) []item {
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		items = append(items, item{Section: string(e.Section), Identity: e.Identity, Username: e.Username, Groups: joinGroups(e.Groups)})
	}
	return items
}

func count(items []item, section string) int {
	n := 0
	for _, i := range items {
		if i.Section == section {
			n++
		}
	}
	return n
}

// requireServes fails unless the authenticator reads data without an error
// and serves exactly want: the same number of entries per section and each
// entry equal, with no two entries it would confuse.
func requireServes(t *testing.T, label string, data map[string]string, want []item) {
	t.Helper()
	v := readWithAuthenticator(data)
	if v.err != nil {
		t.Fatalf("%s: the authenticator cannot parse the render: %v\n%s", label, v.err, dump(data))
	}
	if len(v.unrepresentable) > 0 {
		t.Fatalf("%s: the render has entries no mapping asked for: %v\n%s", label, v.unrepresentable, dump(data))
	}
	for _, s := range []struct {
		name string
		got  int
	}{{"mapRoles", v.roles}, {"mapUsers", v.users}, {"mapAccounts", v.accounts}} {
		if want := count(want, s.name); s.got != want {
			t.Errorf("%s: the authenticator reads %d entries from %s, want %d", label, s.got, s.name, want)
		}
	}
	got, wantSorted := sortItems(v.items), sortItems(want)
	if !slices.Equal(got, wantSorted) {
		t.Fatalf("%s: the authenticator serves\n%s\nwant\n%s\nrender:\n%s", label, lines(got), lines(wantSorted), dump(data))
	}
	seen := map[string]bool{}
	for _, i := range got {
		key := i.Section + " " + strings.ToLower(i.Identity)
		if seen[key] {
			t.Errorf("%s: the authenticator would let one %s shadow another", label, key)
		}
		seen[key] = true
	}
}

func lines[T fmt.Stringer](items []T) string {
	var b strings.Builder
	for _, i := range items {
		fmt.Fprintf(&b, "  %s\n", i)
	}
	return b.String()
}

func dump(data map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(&b, "%s: |\n%s\n", k, data[k])
	}
	return b.String()
}

// asUsername keeps a generated name to usernames the CRD admits: its first
// template, {{AccountID}} aside, must follow a ':' (else whoever assumes
// the role picks the prefix); other names get the prefix "u:".
func asUsername(name string) string {
	rest := strings.ReplaceAll(name, "{{AccountID}}", "")
	if t := strings.Index(rest, "{{"); t >= 0 && !strings.Contains(rest[:t], ":") {
		return "u:" + name
	}
	return name
}
