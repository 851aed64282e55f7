package accessentry_test

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
)

func TestDiff(t *testing.T) {
	view := accessentry.Policy{ARN: viewARN, Namespaces: []string{"a", "b"}}
	admin := accessentry.Policy{ARN: clusterAdminARN}
	want := accessentry.Entry{PrincipalARN: pathRole, Type: "STANDARD", Username: "admin", KubernetesGroups: []string{"ops", "viewers"}, Policies: []accessentry.Policy{admin, view}}
	node := accessentry.Entry{PrincipalARN: nodeRole, Type: "EC2_LINUX"}
	edit := func(e accessentry.Entry, f func(*accessentry.Entry)) accessentry.Entry {
		e.KubernetesGroups = append([]string(nil), e.KubernetesGroups...)
		e.Policies = append([]accessentry.Policy(nil), e.Policies...)
		f(&e)
		return e
	}
	cases := []struct {
		name       string
		want, got  accessentry.Entry
		changes    accessentry.Changes
		noneWanted bool
	}{
		{"the same", want, want, accessentry.Changes{}, true},
		{"groups, policies and namespaces in another order", want, edit(want, func(e *accessentry.Entry) {
			e.KubernetesGroups = []string{"viewers", "ops"}
			e.Policies = []accessentry.Policy{{ARN: viewARN, Namespaces: []string{"b", "a"}}, admin}
		}), accessentry.Changes{}, true},
		{"the principal in another case", want, edit(want, func(e *accessentry.Entry) {
			e.PrincipalARN = "arn:aws:iam::111122223333:role/teams/a/Admins"
		}), accessentry.Changes{}, true},
		{"another principal", want, edit(want, func(e *accessentry.Entry) { e.PrincipalARN = role }),
			accessentry.Changes{Recreate: true, Associate: []accessentry.Policy{admin, view}}, false},
		{"another type", node, edit(node, func(e *accessentry.Entry) { e.Type = "EC2_WINDOWS" }),
			accessentry.Changes{Recreate: true}, false},
		{"another username", want, edit(want, func(e *accessentry.Entry) { e.Username = "root" }),
			accessentry.Changes{Update: true}, false},
		{"a group missing", want, edit(want, func(e *accessentry.Entry) { e.KubernetesGroups = []string{"ops"} }),
			accessentry.Changes{Update: true}, false},
		{"a group more", want, edit(want, func(e *accessentry.Entry) { e.KubernetesGroups = append(e.KubernetesGroups, "x") }),
			accessentry.Changes{Update: true}, false},
		{"a policy missing", want, edit(want, func(e *accessentry.Entry) { e.Policies = []accessentry.Policy{view} }),
			accessentry.Changes{Associate: []accessentry.Policy{admin}}, false},
		{"a policy on the cluster instead of namespaces", want, edit(want, func(e *accessentry.Entry) {
			e.Policies = []accessentry.Policy{admin, {ARN: viewARN}}
		}), accessentry.Changes{Associate: []accessentry.Policy{view}}, false},
		{"a namespace more", want, edit(want, func(e *accessentry.Entry) {
			e.Policies = []accessentry.Policy{admin, {ARN: viewARN, Namespaces: []string{"a", "b", "c"}}}
		}), accessentry.Changes{Associate: []accessentry.Policy{view}}, false},
		{"a policy more", want, edit(want, func(e *accessentry.Entry) { e.Policies = append(e.Policies, accessentry.Policy{ARN: editARN}) }),
			accessentry.Changes{Disassociate: []string{editARN}}, false},
		{"a node entry as EKS fills it in", node, edit(node, func(e *accessentry.Entry) {
			e.Username = ec2Node
			e.KubernetesGroups = []string{"system:nodes"}
			e.Policies = []accessentry.Policy{{ARN: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAutoNodePolicy"}}
		}), accessentry.Changes{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := accessentry.Diff(tc.want, tc.got)
			if diff := gocmp.Diff(tc.changes, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			if got.None() != tc.noneWanted || accessentry.Equal(tc.want, tc.got) != tc.noneWanted {
				t.Fatalf("None() = %v, Equal = %v; want %v", got.None(), accessentry.Equal(tc.want, tc.got), tc.noneWanted)
			}
		})
	}
}
