package oracle

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// gen makes valid mappings from a seeded source, so that a failure can be
// replayed.
type gen struct{ *rand.Rand }

var (
	partitions   = []string{"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}
	iamNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-"
	templates    = []string{"{{AccountID}}", "{{SessionName}}", "{{SessionNameRaw}}", "{{AccessKeyID}}"}
	// printable ASCII without the braces, which only templates may use.
	asciiChars = func() string {
		var b strings.Builder
		for c := byte(0x20); c < 0x7f; c++ {
			if c != '{' && c != '}' {
				b.WriteByte(c)
			}
		}
		return b.String()
	}()
	// runeRanges are printable non-ASCII ranges, with some that YAML
	// treats specially (line and paragraph separators, BOM, NBSP).
	runeRanges = [][2]rune{{0xa0, 0xff}, {0x100, 0x17f}, {0x391, 0x3c9}, {0x410, 0x44f}, {0x5d0, 0x5ea}, {0x627, 0x64a}, {0x2000, 0x200f}, {0x2028, 0x202f}, {0x3041, 0x3096}, {0x4e00, 0x4fff}, {0xac00, 0xacff}, {0xfeff, 0xfeff}, {0xfff9, 0xfffd}, {0x1f600, 0x1f64f}, {0x10000, 0x1007f}}
)

func (g gen) pick(s []string) string { return s[g.IntN(len(s))] }

func (g gen) chars(alphabet string, minLen, maxLen int) string {
	n := minLen + g.IntN(maxLen-minLen+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.IntN(len(alphabet))]
	}
	return string(b)
}

func (g gen) account() string { return fmt.Sprintf("%012d", g.Int64N(1_000_000_000_000)) }

func (g gen) iamName() string {
	if g.IntN(10) == 0 {
		return g.chars(iamNameChars, 60, 64)
	}
	return g.chars(iamNameChars, 1, 20)
}

func (g gen) path() string {
	var b strings.Builder
	for range g.IntN(3) {
		b.WriteString(g.chars(iamNameChars, 1, 12) + "/")
	}
	return b.String()
}

// name makes a username or group, up to limit bytes, from pieces that
// stress the YAML encoding.
func (g gen) name(roleTemplates bool, limit int) string {
	var b strings.Builder
	for range 1 + g.IntN(4) {
		var piece string
		switch g.IntN(6) {
		case 0:
			piece = g.pick(templates)
			if roleTemplates && g.IntN(3) == 0 {
				piece = "{{EC2PrivateDNSName}}"
			}
		case 1:
			piece = g.pick(misreadNames)
		case 2:
			piece = g.pick(unicodeNames)
		case 3:
			for range 1 + g.IntN(5) {
				r := g.pick2(runeRanges)
				piece += string(r)
			}
		default:
			piece = g.chars(asciiChars, 1, 16)
		}
		if b.Len()+len(piece) > limit {
			break
		}
		b.WriteString(piece)
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func (g gen) pick2(ranges [][2]rune) rune {
	r := ranges[g.IntN(len(ranges))]
	return r[0] + rune(g.IntN(int(r[1]-r[0]+1)))
}

func (g gen) groups(roleTemplates bool) []string {
	n := g.IntN(5)
	if g.IntN(20) == 0 {
		n = awsauth.MaxGroups
	}
	var groups []string
	for range n {
		switch g.IntN(4) {
		case 0:
			groups = append(groups, g.pick([]string{"system:masters", "system:nodes", "system:bootstrappers", "system:node-proxier"}))
		default:
			groups = append(groups, g.name(roleTemplates, awsauth.MaxGroupLength))
		}
	}
	return groups
}

func (g gen) mapping(name string) awsauth.Mapping {
	m := awsauth.Mapping{Name: name, Created: epoch.Add(time.Duration(g.IntN(1000)) * time.Second)}
	partition := g.pick(partitions)
	switch g.IntN(10) {
	case 0, 1, 2, 3, 4:
		m.ARN = fmt.Sprintf("arn:%s:iam::%s:role/%s%s", partition, g.account(), g.path(), g.iamName())
		m.Username = asUsername(g.name(true, awsauth.MaxUsernameLength-2))
		m.Groups = g.groups(true)
		if g.IntN(5) == 0 {
			m.Username = "system:node:{{EC2PrivateDNSName}}"
			m.Groups = []string{"system:bootstrappers", "system:nodes"}
		}
	case 5, 6, 7, 8:
		m.ARN = fmt.Sprintf("arn:%s:iam::%s:user/%s%s", partition, g.account(), g.path(), g.iamName())
		m.Username = asUsername(g.name(false, awsauth.MaxUsernameLength-2))
		m.Groups = g.groups(false)
	default:
		m.AccountID = g.account()
	}
	return m
}

// TestRandomSetsMatchAuthenticator renders sets of valid mappings with
// distinct identities and checks the authenticator serves each of them.
func TestRandomSetsMatchAuthenticator(t *testing.T) {
	t.Parallel()
	const sets = 2000
	g := gen{rand.New(rand.NewPCG(20240101, 7))}
	total := 0
	for set := range sets {
		n := g.IntN(25)
		var mappings []awsauth.Mapping
		var want []item
		identities := map[string]bool{}
		for len(mappings) < n {
			m := g.mapping(fmt.Sprintf("m%02d", len(mappings)))
			it := expectedItem(m)
			key := it.Section + " " + strings.ToLower(it.Identity)
			if identities[key] {
				continue
			}
			identities[key] = true
			mappings = append(mappings, m)
			want = append(want, it)
		}
		res := awsauth.Resolve(mappings)
		for _, m := range mappings {
			if out := res.Outcomes[m.Name]; out.Err != nil || out.ShadowedBy != "" {
				t.Fatalf("set %d: valid mapping %+v: error %v, shadowed by %q", set, m, out.Err, out.ShadowedBy)
			}
		}
		rendered, err := awsauth.Render(res.Entries)
		if err != nil {
			t.Fatalf("set %d: Render: %v\nmappings: %+v", set, err, mappings)
		}
		requireServes(t, fmt.Sprintf("set %d", set), rendered.Data, want)
		total += len(mappings)
	}
	t.Logf("%d sets, %d mappings", sets, total)
}
