package awsauth_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// trickyNames are usernames and groups a YAML reader would take for
// something else if they were written out bare.
var trickyNames = []string{
	"true", "false", "yes", "no", "on", "off", "y", "n", "null", "Null", "~",
	"123", "0123", "1e3", "0x1F", "0o17", "1_000", ".inf", "-.inf", ".nan", "1.0", "+1",
	"- x", "-", "? x", "a: b", "a:b", "a #b", "#comment", "&anchor", "*alias", "!tag", "!!str", "%TAG",
	"@at", "`tick", "'single'", `"double"`, "[list]", "{map}", "|", ">", ",", "a,b", "  padded  ",
	"{{AccountID}}", "{{AccountID}}:{{SessionName}}", "{{SessionNameRaw}}", "---", "...", "=",
	"ユーザー", "用户:{{SessionName}}", "😀", "é", "\u00a0", "\u2028", "\u2029", "\ufeff", "back\\slash",
}

func TestRenderKeysAndSections(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	role := roleEntry(roleARN(acct, "admins"), "admin", "system:masters")
	user := userEntry(userARN(acct, "alice"), "alice")
	acc := accountEntry("444455556666")
	tests := []struct {
		name     string
		entries  []awsauth.Entry
		wantKeys []string
	}{
		{name: "nothing", entries: nil, wantKeys: nil},
		{name: "roles only", entries: []awsauth.Entry{role}, wantKeys: []string{"mapRoles"}},
		{name: "users only", entries: []awsauth.Entry{user}, wantKeys: []string{"mapUsers"}},
		{name: "accounts only", entries: []awsauth.Entry{acc}, wantKeys: []string{"mapAccounts"}},
		{name: "every section", entries: []awsauth.Entry{acc, user, role}, wantKeys: []string{"mapAccounts", "mapRoles", "mapUsers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := renderData(tt.entries)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys = %q, want %q", got, tt.wantKeys)
			}
		})
	}
}

// TestRenderFieldNames reads the render with a generic YAML reader, the way
// the authenticator turns it into JSON, and checks what it sees.
func TestRenderFieldNames(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	entries := []awsauth.Entry{
		roleEntry(roleARN(acct, "nodes"), "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		roleEntry(roleARN(acct, "readonly"), "readonly"),
		userEntry(userARN(acct, "eng/alice"), "alice", "eng"),
		accountEntry("000011112222"),
	}
	data, err := renderData(entries)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}

	var roles []map[string]any
	if err := yaml.Unmarshal([]byte(data["mapRoles"]), &roles); err != nil {
		t.Fatalf("mapRoles is not a YAML list of maps: %v\n%s", err, data["mapRoles"])
	}
	// An entry without groups may leave the field out or leave it empty.
	for _, r := range roles {
		if g, ok := r["groups"]; ok && (g == nil || len(g.([]any)) == 0) {
			delete(r, "groups")
		}
	}
	wantRoles := []map[string]any{
		{"rolearn": roleARN(acct, "nodes"), "username": "system:node:{{EC2PrivateDNSName}}", "groups": []any{"system:bootstrappers", "system:nodes"}},
		{"rolearn": roleARN(acct, "readonly"), "username": "readonly"},
	}
	if diff := gocmp.Diff(wantRoles, roles); diff != "" {
		t.Errorf("mapRoles as YAML (-want +got):\n%s", diff)
	}

	var users []map[string]any
	if err := yaml.Unmarshal([]byte(data["mapUsers"]), &users); err != nil {
		t.Fatalf("mapUsers is not a YAML list of maps: %v\n%s", err, data["mapUsers"])
	}
	wantUsers := []map[string]any{{"userarn": userARN(acct, "eng/alice"), "username": "alice", "groups": []any{"eng"}}}
	if diff := gocmp.Diff(wantUsers, users); diff != "" {
		t.Errorf("mapUsers as YAML (-want +got):\n%s", diff)
	}

	// Account IDs must be strings to every reader: a bare 000011112222
	// is a number to most of them and loses its leading zeros.
	var accounts []any
	if err := yaml.Unmarshal([]byte(data["mapAccounts"]), &accounts); err != nil {
		t.Fatalf("mapAccounts is not a YAML list: %v\n%s", err, data["mapAccounts"])
	}
	if diff := gocmp.Diff([]any{"000011112222"}, accounts); diff != "" {
		t.Errorf("mapAccounts as YAML (-want +got):\n%s", diff)
	}
}

func TestRenderTrickyNames(t *testing.T) {
	t.Parallel()
	for i, name := range trickyNames {
		t.Run(fmt.Sprintf("%02d %q", i, name), func(t *testing.T) {
			t.Parallel()
			arn := roleARN("111122223333", "r")
			// A username may not start with a template; groups may.
			username := name
			if strings.Contains(name, "{{") {
				username = "u:" + name
			}
			m := mapping("m", withARN(arn), withUsername(username), withGroups(name, "g:"+name))
			e, err := m.Entry()
			if err != nil {
				t.Fatalf("Entry: %v", err)
			}
			data, err := renderData([]awsauth.Entry{e})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			var roles []map[string]any
			if err := yaml.Unmarshal([]byte(data["mapRoles"]), &roles); err != nil {
				t.Fatalf("mapRoles does not parse: %v\n%s", err, data["mapRoles"])
			}
			want := []map[string]any{{"rolearn": arn, "username": username, "groups": []any{name, "g:" + name}}}
			if diff := gocmp.Diff(want, roles); diff != "" {
				t.Errorf("YAML reads back (-want +got):\n%s\nrender:\n%s", diff, data["mapRoles"])
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	t.Parallel()
	const acct = "111122223333"
	tests := []struct {
		name    string
		entries []awsauth.Entry
		wantErr []string
	}{
		{
			name:    "same role twice",
			entries: []awsauth.Entry{roleEntry(roleARN(acct, "admins"), "a"), roleEntry(roleARN(acct, "admins"), "b")},
			wantErr: []string{"mapRoles", roleARN(acct, "admins")},
		},
		{
			name:    "same role in another case",
			entries: []awsauth.Entry{roleEntry(roleARN(acct, "admins"), "a"), userEntry(userARN(acct, "x"), "x"), roleEntry(roleARN(acct, "ADMINS"), "b")},
			wantErr: []string{"mapRoles", ":role/"},
		},
		{
			name:    "same user twice",
			entries: []awsauth.Entry{userEntry(userARN(acct, "alice"), "a"), userEntry(userARN(acct, "Alice"), "a")},
			wantErr: []string{"mapUsers"},
		},
		{
			name:    "same account twice",
			entries: []awsauth.Entry{accountEntry(acct), accountEntry(acct)},
			wantErr: []string{"mapAccounts", acct},
		},
		{
			name:    "unknown section",
			entries: []awsauth.Entry{{Section: "maproles", Identity: roleARN(acct, "admins"), Username: "a"}},
			wantErr: []string{"maproles"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := renderData(tt.entries)
			requireErrorContains(t, err, tt.wantErr...)
			if data != nil {
				t.Errorf("got data %v along with the error", data)
			}
		})
	}
}

// bigEntry is an entry of a fixed size, so that the size of a render grows
// by the same amount with each one.
func bigEntry(i int) awsauth.Entry {
	groups := make([]string, awsauth.MaxGroups)
	for g := range groups {
		groups[g] = fmt.Sprintf("group-%02d-%s", g, strings.Repeat("x", 200))
	}
	return roleEntry(roleARN(account(i), fmt.Sprintf("role-%06d", i)), strings.Repeat("u", 200), groups...)
}

func TestRenderSizeLimit(t *testing.T) {
	t.Parallel()
	render := func(n int) (map[string]string, error) {
		entries := make([]awsauth.Entry, n)
		for i := range entries {
			entries[i] = bigEntry(i)
		}
		return renderData(entries)
	}
	one, err := render(1)
	if err != nil {
		t.Fatalf("Render(1): %v", err)
	}
	two, err := render(2)
	if err != nil {
		t.Fatalf("Render(2): %v", err)
	}
	// The API server counts the bytes of keys and values.
	size := func(data map[string]string) int {
		n := 0
		for k, v := range data {
			n += len(k) + len(v)
		}
		return n
	}
	per := size(two) - size(one)
	base := size(one) - per
	most := (1<<20 - base) / per
	if most < 10 {
		t.Fatalf("entries of %d bytes are too big for this test", per)
	}

	data, err := render(most)
	if err != nil {
		t.Fatalf("Render(%d entries, %d bytes expected): %v", most, base+most*per, err)
	}
	if got := size(data); got > 1<<20 || got != awsauth.DataSize(data) {
		t.Errorf("render of %d entries is %d bytes (DataSize %d), want %d at most", most, got, awsauth.DataSize(data), 1<<20)
	}
	data, err = render(most + 1)
	requireErrorContains(t, err, "1048576", fmt.Sprint(base+(most+1)*per))
	if data != nil {
		t.Error("got data for a render over the limit")
	}
}

// mixedEntries is a realistic set with every section, several accounts,
// names that differ only in case and usernames YAML would misread. Mappings
// the validation refuses are left out.
func mixedEntries(n int) []awsauth.Entry {
	var entries []awsauth.Entry
	for i := range n {
		acct := account(i % 7)
		var m awsauth.Mapping
		switch i % 4 {
		case 0:
			m = mapping("m", withARN(roleARN(acct, fmt.Sprintf("Role%d", i))), withUsername(fmt.Sprintf("r%d:{{SessionName}}", i)), withGroups("system:masters"))
		case 1:
			m = mapping("m", withARN(roleARN(acct, fmt.Sprintf("path/role%d", i))), withUsername(trickyNames[i%len(trickyNames)]), withGroups(trickyNames[(i+1)%len(trickyNames)], "b", "a"))
		case 2:
			m = mapping("m", withARN(userARN(acct, fmt.Sprintf("path%d/user%d", i%3, i))), withUsername(fmt.Sprintf("u%d", i)))
		case 3:
			m = mapping("m", withAccount(account(1000+i)))
		}
		if e, err := m.Entry(); err == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()
	entries := mixedEntries(60)
	first, err := renderData(entries)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		shuffled := slices.Clone(entries)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got, err := renderData(shuffled)
		if err != nil {
			t.Fatalf("shuffle %d: Render: %v", i, err)
		}
		if diff := gocmp.Diff(first, got); diff != "" {
			t.Fatalf("shuffle %d renders differently (-first +got):\n%s", i, diff)
		}
		if awsauth.Hash(got) != awsauth.Hash(first) {
			t.Fatalf("shuffle %d hashes differently", i)
		}
	}
}

func TestRenderDoesNotModifyItsInput(t *testing.T) {
	t.Parallel()
	entries := mixedEntries(20)
	before := slices.Clone(entries)
	if _, err := renderData(entries); err != nil {
		t.Fatalf("Render: %v", err)
	}
	if diff := gocmp.Diff(before, entries); diff != "" {
		t.Errorf("Render reordered or changed its input (-before +after):\n%s", diff)
	}
}

func TestRenderParseRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []awsauth.Entry
	}{
		{name: "empty", entries: nil},
		{name: "mixed", entries: mixedEntries(80)},
		{name: "one of each", entries: []awsauth.Entry{
			accountEntry("000000000000"),
			userEntry(userARN("111122223333", "a/b/c/alice"), "alice", "x"),
			roleEntry(roleARN("111122223333", "nodes"), "system:node:{{EC2PrivateDNSName}}", "system:bootstrappers", "system:nodes"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := renderData(tt.entries)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			got, errs := awsauth.Parse(data)
			if len(errs) > 0 {
				t.Fatalf("Parse: %v", errs)
			}
			if diff := gocmp.Diff(sortedEntries(tt.entries), got, entryOpts); diff != "" {
				t.Errorf("Parse(Render(x)) mismatch (-x +got):\n%s", diff)
			}
		})
	}
}

// A render carries its entries, hash and size so that the operator never
// parses or hashes the same bytes again: they must describe its data.
func TestRenderedDescribesItsData(t *testing.T) {
	entries := []awsauth.Entry{
		{Section: awsauth.MapUsers, Identity: "arn:aws:iam::111122223333:user/alice", Username: "alice", Groups: []string{"devs"}},
		{Section: awsauth.MapRoles, Identity: "arn:aws:iam::111122223333:role/nodes", Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}},
		{Section: awsauth.MapAccounts, Identity: "444455556666"},
	}
	rendered, err := awsauth.Render(entries)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	parsed, errs := awsauth.Parse(rendered.Data)
	if len(errs) > 0 {
		t.Fatalf("Parse: %v", errs)
	}
	if diff := gocmp.Diff(parsed, rendered.Entries); diff != "" {
		t.Errorf("Entries differ from what the data parses to (-parsed +Entries):\n%s", diff)
	}
	if got := awsauth.Hash(rendered.Data); rendered.Hash != got {
		t.Errorf("Hash = %s, the data hashes to %s", rendered.Hash, got)
	}
	if got := awsauth.DataSize(rendered.Data); rendered.Size != got {
		t.Errorf("Size = %d, the data is %d bytes", rendered.Size, got)
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	base := map[string]string{"mapRoles": "- rolearn: a\n", "mapUsers": "- userarn: b\n"}
	if got, again := awsauth.Hash(base), awsauth.Hash(maps.Clone(base)); got != again {
		t.Errorf("same data hashes to %s and %s", got, again)
	}
	// Build the same data in the other insertion order too.
	reordered := map[string]string{}
	reordered["mapUsers"] = base["mapUsers"]
	reordered["mapRoles"] = base["mapRoles"]
	if awsauth.Hash(reordered) != awsauth.Hash(base) {
		t.Error("insertion order changes the hash")
	}
	if h := awsauth.Hash(base); len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Errorf("hash %q is not a hex sha256", h)
	}
	if awsauth.Hash(nil) != awsauth.Hash(map[string]string{}) {
		t.Error("nil and empty data hash differently")
	}

	changes := map[string]map[string]string{
		"value changed":            {"mapRoles": "- rolearn: A\n", "mapUsers": "- userarn: b\n"},
		"trailing newline dropped": {"mapRoles": "- rolearn: a", "mapUsers": "- userarn: b\n"},
		"key renamed":              {"maproles": "- rolearn: a\n", "mapUsers": "- userarn: b\n"},
		"key added":                {"mapRoles": "- rolearn: a\n", "mapUsers": "- userarn: b\n", "mapAccounts": ""},
		"key removed":              {"mapRoles": "- rolearn: a\n"},
		"values swapped":           {"mapRoles": "- userarn: b\n", "mapUsers": "- rolearn: a\n"},
		"empty":                    {},
	}
	seen := map[string]string{awsauth.Hash(base): "base"}
	for name, data := range changes {
		h := awsauth.Hash(data)
		if other, dup := seen[h]; dup {
			t.Errorf("%s hashes like %s", name, other)
		}
		seen[h] = name
	}
	// Moving bytes between a key and its value, or between two values,
	// must not collide.
	pairs := [][2]map[string]string{
		{{"ab": "c"}, {"a": "bc"}},
		{{"a": "b", "c": "d"}, {"a": "bc", "": "d"}},
		{{"a": "1:b"}, {"a:1": "b"}},
		{{"": ""}, {}},
	}
	for _, p := range pairs {
		if awsauth.Hash(p[0]) == awsauth.Hash(p[1]) {
			t.Errorf("%v and %v hash alike", p[0], p[1])
		}
	}
}
