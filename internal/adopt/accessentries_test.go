package adopt_test

import (
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
)

const policyPrefix = "arn:aws:eks::aws:cluster-access-policy/"

// imported is the part of an imported mapping a test states.
type imported struct {
	Name     string
	ARN      string
	Username string
	Groups   []string
	Type     string
	Policies []string // policy, then "@ns1,ns2" when namespaced
}

func summarizeImport(ms []iamv1alpha1.IAMIdentityMapping) []imported {
	var out []imported
	for _, m := range ms {
		i := imported{Name: m.Name, ARN: m.Spec.ARN, Username: string(m.Spec.Username), Type: string(m.Spec.AccessEntryType)}
		for _, g := range m.Spec.Groups {
			i.Groups = append(i.Groups, string(g))
		}
		for _, p := range m.Spec.AccessPolicies {
			s := p.Policy
			if len(p.Namespaces) > 0 {
				var ns []string
				for _, n := range p.Namespaces {
					ns = append(ns, string(n))
				}
				s += "@" + strings.Join(ns, ",")
			}
			i.Policies = append(i.Policies, s)
		}
		if m.Labels[adopt.AdoptedLabel] != "true" {
			i.Name += " (not labelled adopted)"
		}
		out = append(out, i)
	}
	return out
}

func standard(arn, username string, groups []string, policies ...accessentry.Policy) accessentry.Observed {
	return accessentry.Observed{Entry: accessentry.Entry{PrincipalARN: arn, Type: iamv1alpha1.AccessEntryStandard, Username: username, KubernetesGroups: groups, Policies: policies}}
}

func node(arn string, typ iamv1alpha1.AccessEntryType) accessentry.Observed {
	// EKS fills in a node entry's username and group itself.
	return accessentry.Observed{Entry: accessentry.Entry{PrincipalARN: arn, Type: typ, Username: "system:node:{{EC2PrivateDNSName}}", KubernetesGroups: []string{"system:nodes"}}}
}

// TestFromAccessEntries states, per kind of access entry, the mapping a
// person would write for it by the README's translation table, read
// backwards.
func TestFromAccessEntries(t *testing.T) {
	t.Parallel()
	clusterAdmin := accessentry.Policy{ARN: policyPrefix + "AmazonEKSClusterAdminPolicy"}
	// EKS's default username of a role's entry ("Create access entries").
	creatorDefault := "arn:aws:sts::" + acct + ":assumed-role/creator/{{SessionName}}"
	tagged := standard(roleARN("deployers"), "deploy:{{SessionName}}", []string{"deployers"})
	tagged.Tags = map[string]string{accessentry.MappingTag: "ci-deployers", accessentry.AdoptedTag: "true"}
	tests := []struct {
		name    string
		entries []accessentry.Observed
		want    []imported
		// wantUnrepresentable holds, per expected sentence, what it must
		// mention.
		wantUnrepresentable [][]string
	}{
		{name: "no entries"},
		{
			name:    "the cluster creator: EKS's default username, cluster admin as system:masters",
			entries: []accessentry.Observed{standard(roleARN("creator"), creatorDefault, nil, clusterAdmin)},
			want:    []imported{{Name: "role-" + acct + "-creator", ARN: roleARN("creator"), Username: creatorDefault, Groups: []string{"system:masters"}}},
		},
		{
			name: "policies by name, by ARN when unknown, namespaced; cluster admin in namespaces stays a policy",
			entries: []accessentry.Observed{standard(userARN("ops/alice"), "alice", []string{"ops", "viewers"},
				accessentry.Policy{ARN: policyPrefix + "AmazonEKSClusterAdminPolicy", Namespaces: []string{"dev-*"}},
				accessentry.Policy{ARN: policyPrefix + "AmazonEKSFuturePolicy"},
				accessentry.Policy{ARN: policyPrefix + "AmazonEKSViewPolicy", Namespaces: []string{"default", "kube-system"}},
			)},
			want: []imported{{Name: "user-" + acct + "-ops-alice-" + hash8(userARN("ops/alice")), ARN: userARN("ops/alice"), Username: "alice", Groups: []string{"ops", "viewers"},
				Policies: []string{"AmazonEKSClusterAdminPolicy@dev-*", policyPrefix + "AmazonEKSFuturePolicy", "AmazonEKSViewPolicy@default,kube-system"}}},
		},
		{
			name:    "a role with a path keeps it: EKS matches the full ARN",
			entries: []accessentry.Observed{standard(roleARN("team/dev"), "dev", []string{"dev"})},
			want:    []imported{{Name: "role-" + acct + "-dev", ARN: roleARN("team/dev"), Username: "dev", Groups: []string{"dev"}}},
		},
		{
			name: "every node type becomes its aws-auth form",
			entries: []accessentry.Observed{
				node(roleARN("linux"), iamv1alpha1.AccessEntryEC2Linux),
				node(roleARN("windows"), iamv1alpha1.AccessEntryEC2Windows),
				node(roleARN("fargate"), iamv1alpha1.AccessEntryFargateLinux),
				node(roleARN("hybrid"), iamv1alpha1.AccessEntryHybridLinux),
			},
			want: []imported{
				{Name: "role-" + acct + "-fargate", ARN: roleARN("fargate"), Username: "system:node:{{SessionName}}", Groups: []string{"system:bootstrappers", "system:node-proxier", "system:nodes"}},
				{Name: "role-" + acct + "-hybrid", ARN: roleARN("hybrid"), Username: "system:node:{{SessionName}}", Groups: []string{"system:bootstrappers", "system:nodes"}, Type: "HYBRID_LINUX"},
				{Name: "role-" + acct + "-linux", ARN: roleARN("linux"), Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"system:bootstrappers", "system:nodes"}},
				{Name: "role-" + acct + "-windows", ARN: roleARN("windows"), Username: "system:node:{{EC2PrivateDNSName}}", Groups: []string{"eks:kube-proxy-windows", "system:bootstrappers", "system:nodes"}},
			},
		},
		{
			name:    "an entry the operator made keeps the name of its mapping",
			entries: []accessentry.Observed{tagged},
			want:    []imported{{Name: "ci-deployers", ARN: roleARN("deployers"), Username: "deploy:{{SessionName}}", Groups: []string{"deployers"}}},
		},
		{
			name: "what no mapping reproduces is listed, not imported as something else",
			entries: []accessentry.Observed{
				// EKS Auto Mode's node type, which this version has no form for.
				{Entry: accessentry.Entry{PrincipalARN: roleARN("auto-nodes"), Type: "EC2"}},
				// A username that is no mapping's (a newline).
				standard(userARN("odd"), "odd\nname", nil),
				standard(roleARN("kept"), "kept", nil),
			},
			want: []imported{{Name: "role-" + acct + "-kept", ARN: roleARN("kept"), Username: "kept"}},
			wantUnrepresentable: [][]string{
				{roleARN("auto-nodes"), "type EC2", "accessEntryType"},
				{userARN("odd"), "cannot become an IAMIdentityMapping"},
			},
		},
		{
			name: "two entries tagged with one mapping's name: neither is imported",
			entries: []accessentry.Observed{
				{Entry: tagged.Entry, Tags: tagged.Tags},
				{Entry: standard(roleARN("other"), "other", nil).Entry, Tags: map[string]string{accessentry.MappingTag: "ci-deployers"}},
			},
			wantUnrepresentable: [][]string{{roleARN("deployers"), roleARN("other"), "ci-deployers"}},
		},
		{
			name:                "a tag that is no object name",
			entries:             []accessentry.Observed{{Entry: tagged.Entry, Tags: map[string]string{accessentry.MappingTag: "Not_A_Name"}}},
			wantUnrepresentable: [][]string{{roleARN("deployers"), "Not_A_Name", "remove the tag"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := adopt.FromAccessEntries(tt.entries)
			if diff := gocmp.Diff(tt.want, summarizeImport(got.Mappings)); diff != "" {
				t.Errorf("mappings (-want +got):\n%s", diff)
			}
			requireSentences(t, "unrepresentable", got.Unrepresentable, tt.wantUnrepresentable)
		})
	}
}

// FuzzFromAccessEntries holds the import to its promise on any entries:
// every mapping it writes translates back to exactly the entry it came
// from, and every entry is either imported or listed, never dropped.
func FuzzFromAccessEntries(f *testing.F) {
	f.Add(roleARN("admins"), "STANDARD", "admin:{{SessionName}}", "ops", "AmazonEKSClusterAdminPolicy", "", "")
	f.Add(userARN("a/b"), "STANDARD", "bob", "", "AmazonEKSViewPolicy", "dev-*", "")
	f.Add(roleARN("nodes"), "EC2_WINDOWS", "", "", "", "", "")
	f.Add(roleARN("x"), "HYBRID_LINUX", "", "", "", "", "m")
	f.Add(roleARN("x"), "STANDARD", "system:admin", "system:masters", "", "", "")
	f.Fuzz(func(t *testing.T, arn, typ, username, group, policy, namespace, tag string) {
		e := standard(arn, username, nil)
		e.Entry.Type = iamv1alpha1.AccessEntryType(typ)
		if group != "" {
			e.Entry.KubernetesGroups = []string{group}
		}
		if policy != "" {
			p := accessentry.Policy{ARN: policyPrefix + policy}
			if namespace != "" {
				p.Namespaces = []string{namespace}
			}
			e.Entry.Policies = []accessentry.Policy{p}
		}
		if tag != "" {
			e.Tags = map[string]string{accessentry.MappingTag: tag}
		}
		validTag := len(validation.IsDNS1123Subdomain(tag)) == 0
		got := adopt.FromAccessEntries([]accessentry.Observed{e})
		if len(got.Mappings)+len(got.Unrepresentable) != 1 {
			t.Fatalf("one entry gave %d mappings and %d sentences", len(got.Mappings), len(got.Unrepresentable))
		}
		for _, m := range got.Mappings {
			tr, err := accessentry.Translate(accessentry.InputFrom(&m))
			if err != nil {
				t.Fatalf("imported mapping %+v does not translate: %v", m.Spec, err)
			}
			if !accessentry.Equal(tr.Entry, e.Entry) {
				t.Fatalf("imported mapping %+v translates to %+v, not the entry %+v", m.Spec, tr.Entry, e.Entry)
			}
			if tag != "" && (!validTag || m.Name != tag) {
				t.Fatalf("an entry tagged %q was imported as %q", tag, m.Name)
			}
		}
	})
}
