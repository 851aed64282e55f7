package oracle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
)

// These tests play an attacker who may write IAMIdentityMapping objects
// and assume the mapped role with any session name, and ask the
// authenticator's own server what Kubernetes identity that gives.

const attackerAccount = "111122223333"

func attackerRole(name string) string { return "arn:aws:iam::" + attackerAccount + ":role/" + name }

// render is what the operator would write to aws-auth for the mappings.
func render(t *testing.T, mappings ...awsauth.Mapping) map[string]string {
	t.Helper()
	res := awsauth.Resolve(mappings)
	for name, o := range res.Outcomes {
		if o.Err != nil || o.ShadowedBy != "" {
			t.Fatalf("the operator does not render mapping %s: %v (shadowed by %q)", name, o.Err, o.ShadowedBy)
		}
	}
	rendered, err := awsauth.Render(res.Entries)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return rendered.Data
}

// handWritten is an aws-auth as someone editing it by hand (or an older
// operator) could have written it, encoded by the authenticator itself: the
// operator refuses to render some of the shapes these tests need.
func handWritten(t *testing.T, roles ...config.RoleMapping) map[string]string {
	t.Helper()
	data, err := configmap.EncodeMap(nil, roles, nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Names Kubernetes and EKS reserve or that grant power by themselves:
// usernames under these prefixes are system components or AWS, groups
// under them are bound by the cluster or by the operator's own RBAC.
var (
	reservedUsernamePrefixes = []string{"system:", "eks:", "aws:", "amazon:", "iam:"}
	reservedGroupPrefixes    = []string{"system:", "eks:", "aws-auth-guardian:"}
)

// privileged says why the identity is privileged, or "".
func privileged(username string, groups []string) string {
	for _, p := range reservedUsernamePrefixes {
		if strings.HasPrefix(username, p) {
			return fmt.Sprintf("username %q starts with %q", username, p)
		}
	}
	for _, g := range groups {
		for _, p := range reservedGroupPrefixes {
			if strings.HasPrefix(g, p) {
				return fmt.Sprintf("group %q starts with %q", g, p)
			}
		}
	}
	return ""
}

// TestTemplatesLetTheSessionNameChooseTheIdentity shows, with the
// authenticator's own expansion, why a mapping whose groups hold a
// template, or whose username has a template where a reserved prefix
// could form, is as strong as the identity the attacker's session name
// spells.
func TestTemplatesLetTheSessionNameChooseTheIdentity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		username  string
		groups    []string
		session   string
		wantUser  string
		wantGroup string // one of the groups
	}{
		{name: "group system:{{SessionName}} becomes system:masters",
			username: "intruder", groups: []string{"system:{{SessionName}}"}, session: "masters",
			wantUser: "intruder", wantGroup: "system:masters"},
		{name: "username system:{{SessionName}} becomes a control plane component",
			username: "system:{{SessionName}}", session: "kube-controller-manager",
			wantUser: "system:kube-controller-manager"},
		{name: "a template before the first colon forms the prefix",
			username: "{{SessionName}}:kube-scheduler", session: "system",
			wantUser: "system:kube-scheduler"},
		{name: "a template inside the prefix completes it",
			username: "e{{SessionNameRaw}}:admin", session: "ks",
			wantUser: "eks:admin"},
		{name: "a bare group template is any group without a colon",
			username: "intruder", groups: []string{"{{SessionName}}"}, session: "cluster-admins",
			wantUser: "intruder", wantGroup: "cluster-admins"},
		{name: "a bare username template is any user without a colon",
			username: "{{SessionName}}", session: "alice",
			wantUser: "alice"},
		// A session name holds no colon, so a bare template cannot reach
		// system: on its own.
		{name: "a bare username template cannot form system: by itself",
			username: "{{SessionName}}", session: "system-x",
			wantUser: "system-x"},
		{name: "SessionName turns @ into -", username: "u:{{SessionName}}", groups: []string{"g:{{SessionNameRaw}}"}, session: "a@b",
			wantUser: "u:a-b", wantGroup: "g:a@b"},
		{name: "AccountID is the role's account", username: "{{AccountID}}:{{SessionName}}", session: "masters",
			wantUser: attackerAccount + ":masters"},
		{name: "EC2PrivateDNSName is EC2's name for the instance in the session name",
			username: "system:node:{{EC2PrivateDNSName}}", groups: []string{"system:nodes"}, session: "i-0123456789abcdef0",
			wantUser: "system:node:" + ec2PrivateDNSName, wantGroup: "system:nodes"},
	}
	var roles []config.RoleMapping
	for i, c := range cases {
		roles = append(roles, config.RoleMapping{RoleARN: attackerRole(fmt.Sprintf("case-%d", i)), Username: c.username, Groups: c.groups})
	}
	a := newAuthenticator(t, handWritten(t, roles...))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user, groups, err := a.identity(t, attackerRole(fmt.Sprintf("case-%d", i)), c.session)
			if err != nil {
				t.Fatalf("username %q groups %q session %q: %v", c.username, c.groups, c.session, err)
			}
			if user != c.wantUser {
				t.Errorf("username %q with session %q is %q, want %q", c.username, c.session, user, c.wantUser)
			}
			if c.wantGroup != "" && !slices.Contains(groups, c.wantGroup) {
				t.Errorf("groups %q with session %q are %q, want one %q", c.groups, c.session, groups, c.wantGroup)
			}
		})
	}
}

// TestTemplateRefusals are the expansions the authenticator refuses.
func TestTemplateRefusals(t *testing.T) {
	t.Parallel()
	a := newAuthenticator(t, render(t,
		mapping("node", withARN(attackerRole("node")), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:nodes")),
	))
	_, _, err := a.identity(t, attackerRole("node"), "masters")
	if want := "SessionName did not contain an instance id"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("{{EC2PrivateDNSName}} with session masters: error %v, want one containing %q", err, want)
	}
	_, _, err = a.identity(t, attackerRole("unmapped"), "masters")
	if want := "identity is not mapped"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an unmapped role: error %v, want one containing %q", err, want)
	}
	// STS itself keeps colons out of session names (the harness applies
	// its rule), which is what limits a bare template.
	_, _, err = a.identity(t, attackerRole("node"), "system:masters")
	if want := "STS refuses RoleSessionName"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("session system:masters: error %v, want one containing %q", err, want)
	}
}

// adversarialSessions are session names STS accepts, chosen to complete
// reserved names: each reserved word and every piece of it, names of
// control plane users and groups, the characters SessionName rewrites,
// instance IDs, the longest names, and random ones.
func adversarialSessions() []string {
	set := map[string]bool{}
	words := []string{"system", "eks", "aws", "amazon", "iam", "aws-auth-guardian", "masters", "nodes", "node",
		"kube-controller-manager", "kube-scheduler", "kube-proxy", "admin", "cluster-admin", "serviceaccount", "anonymous", "authenticated"}
	for _, w := range words {
		for i := range len(w) {
			for j := i + 2; j <= len(w); j++ {
				set[w[i:j]] = true
			}
		}
		set[w+"-"] = true
		set["-"+w] = true
	}
	for _, s := range []string{"..", "--", "@@", "==", "+,", "a@b", "system@masters", "system.masters", "system=masters",
		"i-0123abcd", "i-0123456789abcdef0", "i-masters0", strings.Repeat("a", 64), strings.Repeat("@", 64), "system" + strings.Repeat("-", 58)} {
		set[s] = true
	}
	r := rand.New(rand.NewPCG(7, 7))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-"
	for range 100 {
		b := make([]byte, 2+r.IntN(63))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		set[string(b)] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		if stsSessionName.MatchString(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// TestUnprivilegedTemplatesStayUnprivileged: for usernames and groups
// the admission policy lets the mapping editor write, no session name
// gives a privileged identity. The privileged counterparts must give one
// for some session, or the sessions and the check prove nothing.
func TestUnprivilegedTemplatesStayUnprivileged(t *testing.T) {
	t.Parallel()
	type spec struct {
		username string
		groups   []string
	}
	allowedGroups := []string{"viewers", "platform:devs", "dev-team", "systemd", "eks-readers", "aws-auth-guardian-viewers", "masters"}
	allowed := []spec{
		{"team:{{SessionName}}", allowedGroups},
		{"team:{{SessionNameRaw}}", allowedGroups},
		{"dev:{{AccountID}}:{{SessionNameRaw}}", allowedGroups},
		{"{{AccountID}}:{{SessionName}}", allowedGroups},
		{"{{AccountID}}", nil},
		{"sys:{{SessionName}}", nil},
		{"systemx:{{SessionNameRaw}}", nil},
		{"u:{{SessionName}}:system:{{SessionNameRaw}}", nil},
		{"key:{{AccessKeyID}}", nil},
		{"node:{{EC2PrivateDNSName}}", nil},
		{"alice", allowedGroups},
	}
	privilegedSpecs := []spec{
		{"intruder", []string{"system:{{SessionName}}"}},
		{"intruder", []string{"eks:{{SessionNameRaw}}"}},
		{"intruder", []string{"aws-auth-guardian:{{SessionName}}"}},
		{"intruder", []string{"{{SessionName}}:masters"}},
		{"intruder", []string{"aws-auth-{{SessionName}}:x"}},
		{"system:{{SessionName}}", nil},
		{"{{SessionName}}:x", nil},
		{"{{SessionNameRaw}}:{{AccountID}}", nil},
		{"e{{SessionName}}:x", nil},
		{"am{{SessionNameRaw}}:x", nil},
		{"{{SessionName}}m:x", nil},
		{"i{{SessionName}}:x", nil},
	}
	// The allowed shapes as the operator renders them; the privileged ones
	// as written by hand, since the operator refuses some of them.
	var mappings []awsauth.Mapping
	for i, s := range allowed {
		name := fmt.Sprintf("allowed-%d", i)
		mappings = append(mappings, mapping(name, withARN(attackerRole(name)), withUsername(s.username), withGroups(s.groups...)))
	}
	var roles []config.RoleMapping
	for i, s := range privilegedSpecs {
		roles = append(roles, config.RoleMapping{RoleARN: attackerRole(fmt.Sprintf("privileged-%d", i)), Username: s.username, Groups: s.groups})
	}
	a := newAuthenticator(t, render(t, mappings...))
	b := newAuthenticator(t, handWritten(t, roles...))
	sessions := adversarialSessions()
	if len(sessions) < 150 {
		t.Fatalf("only %d adversarial session names", len(sessions))
	}

	for i, s := range allowed {
		authenticated := 0
		for _, session := range sessions {
			user, groups, err := a.identity(t, attackerRole(fmt.Sprintf("allowed-%d", i)), session)
			if err != nil {
				continue // a refusal grants nothing
			}
			authenticated++
			if why := privileged(user, groups); why != "" {
				t.Errorf("username %q groups %q with session %q: %s", s.username, s.groups, session, why)
			}
		}
		if authenticated == 0 {
			t.Errorf("username %q groups %q: no session authenticated, the property was not exercised", s.username, s.groups)
		}
	}
	for i, s := range privilegedSpecs {
		var hits []string
		for _, session := range sessions {
			user, groups, err := b.identity(t, attackerRole(fmt.Sprintf("privileged-%d", i)), session)
			if err == nil && privileged(user, groups) != "" {
				hits = append(hits, session)
			}
		}
		if len(hits) == 0 {
			t.Errorf("username %q groups %q: no session gave a privileged identity; the sessions or the check are too weak", s.username, s.groups)
		} else {
			t.Logf("username %q groups %q: privileged with session %q and %d more", s.username, s.groups, hits[0], len(hits)-1)
		}
	}
}
