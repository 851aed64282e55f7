package awsauth_test

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// renderedBytes is what one entry adds to a render, measured with Render
// itself: the data of the entry alone, less its section's key.
func renderedBytes(t testing.TB, e awsauth.Entry) int {
	t.Helper()
	data, err := renderData([]awsauth.Entry{e})
	if err != nil {
		t.Fatalf("Render(%v): %v", e.Identity, err)
	}
	return awsauth.DataSize(data) - len(e.Section)
}

// sized is a user mapping whose entry adds exactly size bytes to a render:
// full groups first, then a username long enough for the rest.
func sized(t testing.TB, name string, created time.Duration, size int) awsauth.Mapping {
	t.Helper()
	m := mapping(name, withARN(userARN(acct, name)), withUsername("u"), createdAfter(created))
	bytesOf := func(m awsauth.Mapping) int {
		e, err := m.Entry()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return renderedBytes(t, e)
	}
	for len(m.Groups) < awsauth.MaxGroups {
		more := m
		more.Groups = append(slices.Clone(m.Groups), fmt.Sprintf("%02d", len(m.Groups))+strings.Repeat("g", awsauth.MaxGroupLength-2))
		if bytesOf(more) > size {
			break
		}
		m = more
	}
	m.Username = strings.Repeat("u", 1+size-bytesOf(m))
	if got := bytesOf(m); got != size || len(m.Username) > awsauth.MaxUsernameLength {
		t.Fatalf("cannot make %s %d bytes: got %d with a username of %d", name, size, got, len(m.Username))
	}
	return m
}

const acct = "111122223333"

// fillUsers is mappings, created at Epoch, whose entries in mapUsers come
// to exactly total bytes, key included.
func fillUsers(t testing.TB, total int) []awsauth.Mapping {
	t.Helper()
	const each = 1000
	total -= len(awsauth.MapUsers)
	var fill []awsauth.Mapping
	var template awsauth.Mapping
	for i := 0; total > 0; i++ {
		name := fmt.Sprintf("fill-%05d", i)
		if total < 2*each {
			fill = append(fill, sized(t, name, 0, total))
			break
		}
		// Names of the same length give entries of the same size.
		if i == 0 {
			template = sized(t, name, 0, each)
		}
		m := template
		m.Name, m.ARN = name, userARN(acct, name)
		fill = append(fill, m)
		total -= each
	}
	return fill
}

func entryOf(t testing.TB, m awsauth.Mapping) awsauth.Entry {
	t.Helper()
	e, err := m.Entry()
	if err != nil {
		t.Fatalf("%s: %v", m.Name, err)
	}
	return e
}

func TestFit(t *testing.T) {
	t.Parallel()
	const limit = awsauth.MaxDataBytes
	changed := func(m awsauth.Mapping) awsauth.Entry {
		e := entryOf(t, m)
		e.Username += "-before"
		return e
	}
	tests := []struct {
		name     string
		mappings []awsauth.Mapping
		applied  func(mappings []awsauth.Mapping) []awsauth.Entry
		// tooLarge are the mappings left out; free is what the kept ones
		// leave of the limit (-1: not checked).
		tooLarge []string
		free     int
	}{
		{
			name: "everything fits",
			mappings: []awsauth.Mapping{
				mapping("admins", withARN(roleARN(acct, "admins")), withUsername("admin"), withGroups("system:masters")),
				mapping("alice", withARN(userARN(acct, "alice")), withUsername("alice")),
				mapping("acct", withAccount("444455556666")),
			},
			free: -1,
		},
		{
			name:     "exactly at the limit",
			mappings: append(fillUsers(t, limit-1000), sized(t, "last", time.Hour, 1000)),
		},
		{
			name:     "the newest large one is left out",
			mappings: append(fillUsers(t, limit-500), sized(t, "large", time.Hour, 1000)),
			tooLarge: []string{"large"},
			free:     500,
		},
		{
			name:     "an older oversized one is skipped, a newer small one fits",
			mappings: append(fillUsers(t, limit-500), sized(t, "large", time.Hour, 1000), sized(t, "small", 2*time.Hour, 300)),
			tooLarge: []string{"large"},
			free:     200,
		},
		{
			name:     "age, then name",
			mappings: append(fillUsers(t, limit-1500), sized(t, "b-same-age", time.Hour, 1000), sized(t, "a-same-age", time.Hour, 1000)),
			tooLarge: []string{"b-same-age"},
			free:     500,
		},
		{
			name:     "an entry applied unchanged is kept over an older changed one",
			mappings: append(fillUsers(t, limit-1500), sized(t, "older-changed", time.Hour, 1000), sized(t, "newer-applied", 2*time.Hour, 1000)),
			applied: func(ms []awsauth.Mapping) []awsauth.Entry {
				return []awsauth.Entry{changed(ms[len(ms)-2]), entryOf(t, ms[len(ms)-1])}
			},
			tooLarge: []string{"older-changed"},
			free:     500,
		},
		{
			name: "entries applied unchanged come before older new ones",
			mappings: append(fillUsers(t, limit-1500),
				sized(t, "new", time.Minute, 1000), sized(t, "applied", time.Hour, 1000)),
			applied:  func(ms []awsauth.Mapping) []awsauth.Entry { return []awsauth.Entry{entryOf(t, ms[len(ms)-1])} },
			tooLarge: []string{"new"},
			free:     500,
		},
		{
			name:     "a new section's key counts",
			mappings: append(fillUsers(t, limit-len("mapAccounts")-renderedBytes(t, accountEntry("444455556666"))+1), mapping("acct", withAccount("444455556666"), createdAfter(time.Hour))),
			tooLarge: []string{"acct"},
			free:     len("mapAccounts") + renderedBytes(t, accountEntry("444455556666")) - 1,
		},
		{
			name: "invalid and shadowed mappings are not counted",
			mappings: append(fillUsers(t, limit-1000),
				mapping("invalid", withARN(roleARN(acct, "x")), withUsername(strings.Repeat("u", 300)), createdAfter(-time.Hour)),
				mapping("shadowed", withARN(userARN(acct, "fill-00000")), withUsername("other"), createdAfter(time.Hour)),
				sized(t, "last", time.Hour, 1000)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var applied []awsauth.Entry
			if tt.applied != nil {
				applied = tt.applied(tt.mappings)
			}
			res := awsauth.Resolve(tt.mappings)
			fitted := awsauth.Fit(res, applied)

			var want []awsauth.Entry
			for _, m := range tt.mappings {
				out := fitted.Outcomes[m.Name]
				if diff := gocmp.Diff(res.Outcomes[m.Name].Entry, out.Entry, entryOpts); diff != "" || !errors.Is(out.Err, res.Outcomes[m.Name].Err) || out.ShadowedBy != res.Outcomes[m.Name].ShadowedBy {
					t.Errorf("%s: Fit changed the outcome beyond TooLarge (-want +got):\n%s", m.Name, diff)
				}
				switch {
				case slices.Contains(tt.tooLarge, m.Name):
					wantOverflow := &awsauth.Overflow{EntryBytes: renderedBytes(t, out.Entry), FreeBytes: tt.free}
					if diff := gocmp.Diff(wantOverflow, out.TooLarge); diff != "" {
						t.Errorf("%s: TooLarge mismatch (-want +got):\n%s", m.Name, diff)
					}
				case out.TooLarge != nil:
					t.Errorf("%s: TooLarge = %+v, want it kept", m.Name, out.TooLarge)
				case out.Err == nil && out.ShadowedBy == "":
					want = append(want, out.Entry)
				}
			}
			if diff := gocmp.Diff(sortedEntries(want), fitted.Entries, entryOpts); diff != "" {
				t.Errorf("Entries mismatch (-want +got):\n%s", diff)
			}
			data, err := renderData(fitted.Entries)
			if err != nil {
				t.Fatalf("Render of the kept entries: %v", err)
			}
			if got := limit - awsauth.DataSize(data); tt.free >= 0 && got != tt.free {
				t.Errorf("the render leaves %d bytes free, want %d", got, tt.free)
			}
			// RenderFitted fits only what is over the limit, to the same end.
			viaRender, renderedData, err := awsauth.RenderFitted(res, applied)
			if err != nil {
				t.Fatalf("RenderFitted: %v", err)
			}
			if !maps.Equal(renderedData.Data, data) {
				t.Error("RenderFitted renders other data than Render of Fit")
			}
			for _, m := range tt.mappings {
				if diff := gocmp.Diff(fitted.Outcomes[m.Name].TooLarge, viaRender.Outcomes[m.Name].TooLarge); diff != "" {
					t.Errorf("%s: RenderFitted says otherwise of TooLarge (-Fit +RenderFitted):\n%s", m.Name, diff)
				}
			}
			if again := awsauth.Fit(fitted, applied); !slices.EqualFunc(again.Entries, fitted.Entries, awsauth.Entry.Equal) {
				t.Error("a fitted resolution does not fit again unchanged")
			}
		})
	}
}

// TestFitProperties fits random mappings of random sizes, some applied,
// some changed, and checks against Render that the kept entries always
// render within the limit and that the fit is the greedy one: every entry
// left out would not have fitted next to the entries kept before it.
func TestFitProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 12 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			var mappings []awsauth.Mapping
			var applied []awsauth.Entry
			unchanged := map[string]bool{}
			for i := range 500 + rng.IntN(700) {
				name := fmt.Sprintf("m-%03d", i)
				created := time.Duration(rng.IntN(50)) * time.Second // same ages, to be told apart by name
				var m awsauth.Mapping
				switch rng.IntN(10) {
				case 0:
					m = mapping(name, withAccount(account(i)), createdAfter(created))
				case 1, 2:
					m = mapping(name, withARN(roleARN(acct, name)), withUsername(strings.Repeat("r", 1+rng.IntN(awsauth.MaxUsernameLength))), createdAfter(created))
				default:
					path := strings.Repeat("p/", rng.IntN(1000))
					m = mapping(name, withARN(userARN(acct, path+name)), withUsername(strings.Repeat("u", 1+rng.IntN(awsauth.MaxUsernameLength))), createdAfter(created))
					for g := range rng.IntN(awsauth.MaxGroups + 1) {
						m.Groups = append(m.Groups, fmt.Sprintf("%02d", g)+strings.Repeat("g", rng.IntN(awsauth.MaxGroupLength-1)))
					}
				}
				mappings = append(mappings, m)
				switch rng.IntN(4) {
				case 0:
					applied = append(applied, entryOf(t, m))
					unchanged[name] = true
				case 1:
					e := entryOf(t, m)
					e.Username += "-before"
					applied = append(applied, e)
				}
			}
			fitted := awsauth.Fit(awsauth.Resolve(mappings), applied)

			data, err := renderData(fitted.Entries)
			if err != nil {
				t.Fatalf("the kept entries do not render: %v", err)
			}
			// Sizes add up, section by section, as the API server counts
			// them: so an entry fits next to others by their sum.
			size := map[string]int{}
			for _, m := range mappings {
				if out := fitted.Outcomes[m.Name]; out.Err == nil && out.ShadowedBy == "" {
					size[m.Name] = renderedBytes(t, out.Entry)
				}
			}
			sum := func(names []string) int {
				total := 0
				sections := map[awsauth.Section]bool{}
				for _, n := range names {
					e := fitted.Outcomes[n].Entry
					total += size[n]
					if !sections[e.Section] {
						total += len(e.Section)
						sections[e.Section] = true
					}
				}
				return total
			}
			// The test's own order of preference.
			order := slices.SortedFunc(slices.Values(mappings), func(a, b awsauth.Mapping) int {
				return cmp.Or(cmp.Compare(b2i(unchanged[b.Name]), b2i(unchanged[a.Name])), a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
			})
			var kept, left []string
			for _, m := range order {
				out := fitted.Outcomes[m.Name]
				switch {
				case out.Err != nil || out.ShadowedBy != "":
					t.Fatalf("%s: a random mapping is invalid or shadowed: %+v", m.Name, out)
				case out.TooLarge == nil:
					kept = append(kept, m.Name)
					continue
				}
				left = append(left, m.Name)
				if total := sum(append(slices.Clone(kept), m.Name)); total <= awsauth.MaxDataBytes {
					t.Errorf("%s was left out, but fits next to the %d entries kept before it (%d bytes)", m.Name, len(kept), total)
				}
				if free := awsauth.MaxDataBytes - awsauth.DataSize(data); out.TooLarge.FreeBytes != free || out.TooLarge.EntryBytes != size[m.Name] {
					t.Errorf("%s: TooLarge = %+v, but the entry is %d bytes and the render leaves %d free", m.Name, out.TooLarge, size[m.Name], free)
				}
			}
			if got, want := awsauth.DataSize(data), sum(kept); got != want {
				t.Fatalf("the render of the kept entries is %d bytes, their sizes add up to %d", got, want)
			}
			if len(fitted.Entries) != len(kept) {
				t.Fatalf("%d entries rendered, %d mappings kept", len(fitted.Entries), len(kept))
			}
			// The sum is checked once against Render itself, over the limit.
			if len(left) > 0 {
				var entries []awsauth.Entry
				for _, n := range append(kept, left[0]) {
					entries = append(entries, fitted.Outcomes[n].Entry)
				}
				if _, err := renderData(entries); err == nil || !strings.Contains(err.Error(), "over the ConfigMap limit") {
					t.Errorf("Render of the kept entries and %s: got %v, want the size refused", left[0], err)
				}
			}
			t.Logf("%d mappings, %d left out, render %d bytes", len(mappings), len(left), awsauth.DataSize(data))
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
