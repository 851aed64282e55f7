package migrate_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

// The vocabulary the fuzzer builds mappings and entries from: few enough
// values that equal entries, shadowed mappings and node forms are common.
var (
	fuzzARNs      = []string{pathRole, adminsRole, adminsWithPath, nodeRole, userARN, creatorRole}
	fuzzUsernames = []string{"admin", "root", ec2Node, sessionNode, "eks:x", "u:{{AccessKeyID}}"}
	fuzzGroups    = []string{"ops", "dev", "system:masters", "system:nodes", "system:bootstrappers", "eks:kube-proxy-windows", "system:node-proxier"}
	fuzzTypes     = []iamv1alpha1.AccessEntryType{"", "STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "HYBRID_LINUX"}
	fuzzPolicies  = []accessentry.Policy{{ARN: clusterAdminARN}, {ARN: viewARN}, {ARN: clusterAdminARN, Namespaces: []string{"dev"}}, {ARN: viewARN, Namespaces: []string{"a", "b"}}}
)

// bytes hands out the fuzzer's input one choice at a time; 0 once it is
// used up.
type bytes struct{ data []byte }

func (b *bytes) pick(n int) int {
	if len(b.data) == 0 {
		return 0
	}
	v := int(b.data[0]) % n
	b.data = b.data[1:]
	return v
}

func pick[T any](b *bytes, from []T) T { return from[b.pick(len(from))] }

func fuzzInput(data []byte) migrate.Input {
	b := &bytes{data: data}
	var ms []*iamv1alpha1.IAMIdentityMapping
	for i := range b.pick(6) {
		opts := []option{withUsername(pick(b, fuzzUsernames))}
		if b.pick(8) == 0 {
			opts = []option{withAccount("444455556666")}
		} else {
			opts = append(opts, withARN(pick(b, fuzzARNs)), withType(pick(b, fuzzTypes)))
		}
		for range b.pick(4) {
			opts = append(opts, withGroups(pick(b, fuzzGroups)))
		}
		if b.pick(3) == 0 {
			opts = append(opts, withPolicy("AmazonEKSViewPolicy"))
		}
		ms = append(ms, mapping(fmt.Sprintf("m%d", i), opts...))
	}
	r := iam
	if b.pick(5) == 0 {
		r = roles{failing: true}
	}
	in := migrate.Input{Mappings: grants(r, ms...)}
	if b.pick(6) == 0 {
		in.Unreadable = []string{"mapRoles item 1 sets userid."}
	}
	if b.pick(6) == 0 {
		return in // not checked
	}
	in.Cluster = &migrate.Cluster{Mode: "API_AND_CONFIG_MAP"}
	seen := map[string]bool{}
	for range b.pick(6) {
		arn := pick(b, fuzzARNs)
		if seen[accessentry.PrincipalKey(arn)] {
			continue // EKS holds one entry per principal
		}
		seen[accessentry.PrincipalKey(arn)] = true
		typ := pick(b, fuzzTypes[1:])
		e := entry(arn, typ)
		if typ == "STANDARD" {
			var groups []string
			for range b.pick(3) {
				groups = append(groups, pick(b, fuzzGroups[:2]))
			}
			e = entry(arn, typ, user(pick(b, fuzzUsernames[:2]), slices.Compact(slices.Sorted(slices.Values(groups)))...))
			for range b.pick(3) {
				p := pick(b, fuzzPolicies)
				if !slices.ContainsFunc(e.Entry.Policies, func(q accessentry.Policy) bool { return q.ARN == p.ARN }) {
					e.Entry.Policies = append(e.Entry.Policies, p)
				}
			}
		}
		in.Cluster.Entries = append(in.Cluster.Entries, e)
	}
	return in
}

// FuzzAnalyze checks what a report must say, whatever aws-auth and the
// cluster hold: a report that says ready has, for every identity aws-auth
// grants and the operator can translate, an equal entry, and an entry with
// the cluster admin policy on the whole cluster; every blocker is counted
// once and says why; and the report does not depend on the order of its
// input.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 2, 0, 2, 0, 1, 2, 3})
	f.Add([]byte{2, 3, 3, 0, 1, 2, 3, 1, 1, 0, 3, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7, 8})
	f.Add([]byte{4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzInput(data)
		got := migrate.Analyze(in)

		if (got.Verdict == migrate.VerdictReady) != (in.Cluster != nil && len(got.Blockers) == 0) {
			t.Fatalf("verdict %q with %d blockers, cluster read %t", got.Verdict, len(got.Blockers), in.Cluster != nil)
		}
		blocking := 0
		for _, row := range got.Identities {
			if row.Blocks {
				blocking++
				if row.Why == "" {
					t.Fatalf("row %s blocks and says not why", row.Mapping)
				}
			}
		}
		want := blocking + len(in.Unreadable)
		for _, b := range got.Blockers {
			if b.Kind == migrate.BlockClusterAdmin {
				want++
			}
		}
		if len(got.Blockers) != want {
			t.Fatalf("%d blockers, want %d rows blocking + %d unreadable + cluster admin: %+v", len(got.Blockers), blocking, len(in.Unreadable), got.Blockers)
		}

		if got.Verdict == migrate.VerdictReady {
			for _, row := range got.Identities {
				m := slices.IndexFunc(in.Mappings, func(m migrate.Mapping) bool { return m.Grant.Name == row.Mapping })
				d := in.Mappings[m].Desired
				if d.Kind == accessentry.DesiredPrincipalNotFound {
					continue // no such role: aws-auth grants it nothing
				}
				if d.Kind != accessentry.DesiredEntry || !slices.ContainsFunc(in.Cluster.Entries, func(o accessentry.Observed) bool { return accessentry.Equal(d.Entry, o.Entry) }) {
					t.Fatalf("ready, but %s (%s) has no equal entry: %+v", row.Mapping, d.Kind, row)
				}
			}
			if !slices.ContainsFunc(in.Cluster.Entries, func(o accessentry.Observed) bool {
				return slices.ContainsFunc(o.Entry.Policies, accessentry.IsClusterAdmin)
			}) {
				t.Fatal("ready, but no entry has the cluster admin policy on the whole cluster")
			}
		}

		shuffled := in
		rng := rand.New(rand.NewPCG(uint64(len(data)), 1))
		shuffled.Mappings = slices.Clone(in.Mappings)
		rng.Shuffle(len(shuffled.Mappings), func(i, j int) {
			shuffled.Mappings[i], shuffled.Mappings[j] = shuffled.Mappings[j], shuffled.Mappings[i]
		})
		if in.Cluster != nil {
			c := *in.Cluster
			c.Entries = slices.Clone(c.Entries)
			rng.Shuffle(len(c.Entries), func(i, j int) { c.Entries[i], c.Entries[j] = c.Entries[j], c.Entries[i] })
			shuffled.Cluster = &c
		}
		if diff := gocmp.Diff(got, migrate.Analyze(shuffled)); diff != "" {
			t.Fatalf("the report depends on the order of its input (-in order +shuffled):\n%s", diff)
		}
	})
}
