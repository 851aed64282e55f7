package accessentry_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// The principals and policies of the plan tests. Expected steps are
// written out by hand from the rules of the brief, not from plan.go.
const (
	arnA     = "arn:aws:iam::111122223333:role/team/a"
	arnB     = "arn:aws:iam::111122223333:role/team/b"
	arnC     = "arn:aws:iam::111122223333:role/team/c"
	arnNodes = "arn:aws:iam::111122223333:role/eks/nodes"
	arnNode2 = "arn:aws:iam::111122223333:role/eks/nodes-2"
	arnOwner = "arn:aws:iam::111122223333:role/cluster-creator"
)

var (
	adminPolicy = accessentry.Policy{ARN: clusterAdminARN}
	viewPolicy  = accessentry.Policy{ARN: viewARN}
	editPolicy  = accessentry.Policy{ARN: editARN}
	t0          = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

func std(arn, username string, groups []string, policies ...accessentry.Policy) accessentry.Entry {
	return accessentry.Entry{PrincipalARN: arn, Type: "STANDARD", Username: username, KubernetesGroups: groups, Policies: policies}
}

func node(arn string, typ iamv1alpha1.AccessEntryType) accessentry.Entry {
	return accessentry.Entry{PrincipalARN: arn, Type: typ}
}

func ours(mapping string, e accessentry.Entry) accessentry.Observed {
	return accessentry.Observed{Entry: e, Tags: map[string]string{accessentry.MappingTag: mapping, "team": "x"}}
}

func notOurs(e accessentry.Entry) accessentry.Observed {
	return accessentry.Observed{Entry: e, Tags: map[string]string{"team": "x"}}
}

// wants is a mapping of the given age (in hours after t0) translated to e.
func wants(name string, age int, e accessentry.Entry) accessentry.Desired {
	return accessentry.Desired{Name: name, UID: "uid-" + name, Created: t0.Add(time.Duration(age) * time.Hour), Kind: accessentry.DesiredEntry, Entry: e}
}

func noEntry(name string, kind accessentry.DesiredKind) accessentry.Desired {
	return accessentry.Desired{Name: name, UID: "uid-" + name, Created: t0, Kind: kind, Err: errors.New("why")}
}

func create(mapping string, e accessentry.Entry) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepCreate, PrincipalARN: e.PrincipalARN, Mapping: mapping, Entry: e}
}

func associate(mapping, arn string, p accessentry.Policy) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepAssociate, PrincipalARN: arn, Mapping: mapping, Policy: p}
}

func disassociate(mapping, arn, policy string) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepDisassociate, PrincipalARN: arn, Mapping: mapping, Policy: accessentry.Policy{ARN: policy}}
}

func del(mapping, arn string) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepDelete, PrincipalARN: arn, Mapping: mapping}
}

func tag(mapping, arn string) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepTag, PrincipalARN: arn, Mapping: mapping}
}

// adopt is the tag step that makes an untagged entry ours.
func adopt(mapping, arn string) accessentry.Step {
	st := tag(mapping, arn)
	st.Adopt = true
	return st
}

func release(mapping, arn string) accessentry.Step {
	return accessentry.Step{Kind: accessentry.StepRelease, PrincipalARN: arn, Mapping: mapping}
}

// adopted is an entry of mapping that the operator adopted.
func adopted(mapping string, e accessentry.Entry) accessentry.Observed {
	o := ours(mapping, e)
	o.Tags[accessentry.AdoptedTag] = "true"
	return o
}

func held(reason string, steps ...accessentry.Step) []accessentry.Held {
	var out []accessentry.Held
	for _, s := range steps {
		out = append(out, accessentry.Held{Step: s, Reason: reason})
	}
	return out
}

var anyGuards = accessentry.Guards{MaxRemovedShare: 0.5}

type planCase struct {
	name     string
	desired  []accessentry.Desired
	observed []accessentry.Observed
	guards   accessentry.Guards
	steps    []accessentry.Step
	held     []accessentry.Held
	// states are the outcome states by mapping; with is the With of a
	// conflict.
	states  map[string]accessentry.State
	with    map[string]string
	refusal string
}

func runPlanCases(t *testing.T, cases []planCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := accessentry.Plan(tc.desired, tc.observed, tc.guards)
			if diff := gocmp.Diff(tc.steps, got.Steps, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.held, got.Held, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
			states := map[string]accessentry.State{}
			with := map[string]string{}
			for name, o := range got.Outcomes {
				states[name] = o.State
				if o.With != "" {
					with[name] = o.With
				}
				if o.UID != "uid-"+name {
					t.Errorf("outcome of %s has UID %q", name, o.UID)
				}
				if o.Message == "" {
					t.Errorf("outcome of %s has no message", name)
				}
				if o.State == accessentry.StateBlocked && o.Reason == "" {
					t.Errorf("%s is blocked without a reason", name)
				}
			}
			if diff := gocmp.Diff(tc.states, states, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.with, with, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("conflicts with (-want +got):\n%s", diff)
			}
			reason := ""
			if got.Refusal != nil {
				reason = got.Refusal.Reason
				if got.Refusal.Message == "" {
					t.Errorf("refusal %s without a message", reason)
				}
			}
			if reason != tc.refusal {
				t.Errorf("refusal %q, want %q", reason, tc.refusal)
			}
		})
	}
}

func TestPlanRules(t *testing.T) {
	admins := std(arnA, "admin", []string{"ops"}, adminPolicy)
	viewer := std(arnB, "viewer", nil, viewPolicy)
	runPlanCases(t, []planCase{
		{name: "a new mapping is created, then its policies associated",
			desired: []accessentry.Desired{wants("a", 0, std(arnA, "admin", []string{"ops"}, adminPolicy, viewPolicy))},
			steps: []accessentry.Step{
				create("a", std(arnA, "admin", []string{"ops"})),
				associate("a", arnA, adminPolicy),
				associate("a", arnA, viewPolicy),
			},
			states: map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "an entry of ours that is the translation needs nothing",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{ours("a", admins)},
			states:   map[string]accessentry.State{"a": accessentry.StateSynced}},
		{name: "principals compare without case",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{ours("a", std(strings.ToUpper(arnA[:20])+arnA[20:], "admin", []string{"ops"}, adminPolicy))},
			states:   map[string]accessentry.State{"a": accessentry.StateSynced}},
		{name: "an untagged entry equal to the translation is adopted by tagging it, and nothing else",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{notOurs(std(arnA, "admin", []string{"ops"}, adminPolicy))},
			steps:    []accessentry.Step{adopt("a", arnA)},
			states:   map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "an untagged node entry EKS made is adopted when the mapping is that node role",
			desired:  []accessentry.Desired{wants("n", 0, node(arnNodes, "EC2_LINUX"))},
			observed: []accessentry.Observed{notOurs(accessentry.Entry{PrincipalARN: arnNodes, Type: "EC2_LINUX", Username: "system:node:{{EC2PrivateDNSName}}", KubernetesGroups: []string{"system:nodes"}})},
			steps:    []accessentry.Step{adopt("n", arnNodes)},
			states:   map[string]accessentry.State{"n": accessentry.StateProgressing}},
		{name: "an adopted entry whose mapping is gone is released, not deleted",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{ours("a", admins), adopted("gone", node(arnNodes, "EC2_LINUX"))},
			steps:    []accessentry.Step{release("gone", arnNodes)},
			states:   map[string]accessentry.State{"a": accessentry.StateSynced}},
		{name: "an adopted entry whose mapping has no entry any more is released",
			desired:  []accessentry.Desired{noEntry("b", accessentry.DesiredNotRepresentable)},
			observed: []accessentry.Observed{adopted("b", viewer)},
			steps:    []accessentry.Step{release("b", arnB)},
			states:   map[string]accessentry.State{"b": accessentry.StateProgressing}},
		{name: "an adopted entry is kept up to date as one the operator made",
			desired:  []accessentry.Desired{wants("a", 0, std(arnA, "root", []string{"ops"}, adminPolicy))},
			observed: []accessentry.Observed{adopted("a", admins)},
			steps: []accessentry.Step{{Kind: accessentry.StepUpdate, PrincipalARN: arnA, Mapping: "a",
				Entry: accessentry.Entry{PrincipalARN: arnA, Type: "STANDARD", Username: "root", KubernetesGroups: []string{"ops"}}}},
			states: map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "an untagged entry that differs is a conflict and is left alone",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{notOurs(std(arnA, "admin", []string{"ops"}, viewPolicy))},
			states:   map[string]accessentry.State{"a": accessentry.StateConflict},
			with:     map[string]string{"a": arnA}},
		{name: "an untagged node entry of another type is a conflict, not a recreation",
			desired:  []accessentry.Desired{wants("n", 0, node(arnNodes, "EC2_WINDOWS"))},
			observed: []accessentry.Observed{notOurs(node(arnNodes, "EC2_LINUX"))},
			states:   map[string]accessentry.State{"n": accessentry.StateConflict},
			with:     map[string]string{"n": arnNodes}},
		{name: "untagged entries no mapping names are never touched",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{ours("a", admins), notOurs(std(arnOwner, "", nil, adminPolicy)), notOurs(node(arnNodes, "EC2_LINUX")), {Entry: viewer}},
			states:   map[string]accessentry.State{"a": accessentry.StateSynced}},
		{name: "an entry tagged with a deleted mapping is deleted",
			desired:  []accessentry.Desired{wants("a", 0, admins)},
			observed: []accessentry.Observed{ours("a", admins), ours("gone", viewer)},
			steps:    []accessentry.Step{del("gone", arnB)},
			states:   map[string]accessentry.State{"a": accessentry.StateSynced}},
		{name: "the entry of a mapping that is no longer representable is deleted",
			desired:  []accessentry.Desired{noEntry("b", accessentry.DesiredNotRepresentable)},
			observed: []accessentry.Observed{ours("b", viewer)},
			steps:    []accessentry.Step{del("b", arnB)},
			states:   map[string]accessentry.State{"b": accessentry.StateProgressing}},
		{name: "the entry of a mapping whose role IAM does not have is deleted",
			desired:  []accessentry.Desired{noEntry("b", accessentry.DesiredPrincipalNotFound)},
			observed: []accessentry.Observed{ours("b", viewer)},
			steps:    []accessentry.Step{del("b", arnB)},
			states:   map[string]accessentry.State{"b": accessentry.StateProgressing}},
		{name: "a mapping without an entry and nothing of ours is NoEntry",
			desired: []accessentry.Desired{noEntry("c", accessentry.DesiredNotRepresentable)},
			states:  map[string]accessentry.State{"c": accessentry.StateNoEntry}},
		{name: "the entry of a mapping whose translation is pending is kept",
			desired:  []accessentry.Desired{noEntry("b", accessentry.DesiredPending)},
			observed: []accessentry.Observed{ours("b", viewer)},
			states:   map[string]accessentry.State{"b": accessentry.StateProgressing}},
		{name: "the entry of a mapping whose translation EKS refused is kept",
			desired:  []accessentry.Desired{noEntry("b", accessentry.DesiredRefused)},
			observed: []accessentry.Observed{ours("b", viewer)},
			states:   map[string]accessentry.State{"b": accessentry.StateRefused}},
		{name: "other groups or username are an update",
			desired:  []accessentry.Desired{wants("a", 0, std(arnA, "root", []string{"dev", "ops"}, adminPolicy))},
			observed: []accessentry.Observed{ours("a", admins)},
			steps: []accessentry.Step{{Kind: accessentry.StepUpdate, PrincipalARN: arnA, Mapping: "a",
				Entry: accessentry.Entry{PrincipalARN: arnA, Type: "STANDARD", Username: "root", KubernetesGroups: []string{"dev", "ops"}}}},
			states: map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "a policy more is associated, a policy less disassociated, a new scope associated again",
			desired: []accessentry.Desired{wants("a", 0, std(arnA, "admin", []string{"ops"},
				editPolicy, accessentry.Policy{ARN: viewARN, Namespaces: []string{"dev"}}))},
			observed: []accessentry.Observed{ours("a", std(arnA, "admin", []string{"ops"}, adminPolicy, viewPolicy)), notOurs(std(arnOwner, "", nil, adminPolicy))},
			steps: []accessentry.Step{
				associate("a", arnA, editPolicy),
				associate("a", arnA, accessentry.Policy{ARN: viewARN, Namespaces: []string{"dev"}}),
				disassociate("a", arnA, clusterAdminARN),
			},
			states: map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "another type is a recreation of an entry of ours",
			desired:  []accessentry.Desired{wants("n", 0, node(arnNodes, "EC2_WINDOWS")), wants("m", 1, node(arnNode2, "EC2_LINUX"))},
			observed: []accessentry.Observed{ours("n", node(arnNodes, "EC2_LINUX")), ours("m", node(arnNode2, "EC2_LINUX"))},
			steps:    []accessentry.Step{{Kind: accessentry.StepRecreate, PrincipalARN: arnNodes, Mapping: "n", Entry: node(arnNodes, "EC2_WINDOWS")}},
			states:   map[string]accessentry.State{"n": accessentry.StateProgressing, "m": accessentry.StateSynced}},
		{name: "a recreation to STANDARD associates the policies after it",
			desired:  []accessentry.Desired{wants("n", 0, std(arnNodes, "x", nil, viewPolicy)), wants("m", 1, node(arnNode2, "EC2_LINUX"))},
			observed: []accessentry.Observed{ours("n", node(arnNodes, "EC2_LINUX")), ours("m", node(arnNode2, "EC2_LINUX"))},
			steps: []accessentry.Step{
				{Kind: accessentry.StepRecreate, PrincipalARN: arnNodes, Mapping: "n", Entry: std(arnNodes, "x", nil)},
				associate("n", arnNodes, viewPolicy),
			},
			states: map[string]accessentry.State{"n": accessentry.StateProgressing, "m": accessentry.StateSynced}},
		{name: "another principal is created before the old entry is deleted",
			desired:  []accessentry.Desired{wants("a", 0, std(arnC, "admin", []string{"ops"}, adminPolicy))},
			observed: []accessentry.Observed{ours("a", admins)},
			steps: []accessentry.Step{
				create("a", std(arnC, "admin", []string{"ops"})),
				associate("a", arnC, adminPolicy),
				del("a", arnA),
			},
			states: map[string]accessentry.State{"a": accessentry.StateProgressing}},
		{name: "of two mappings of one principal the older wins",
			desired:  []accessentry.Desired{wants("young", 2, std(arnB, "y", nil)), wants("old", 1, std(arnB, "o", nil))},
			observed: []accessentry.Observed{},
			steps:    []accessentry.Step{create("old", std(arnB, "o", nil))},
			states:   map[string]accessentry.State{"old": accessentry.StateProgressing, "young": accessentry.StateConflict},
			with:     map[string]string{"young": "old"}},
		{name: "of two mappings of one age the first by name wins",
			desired: []accessentry.Desired{wants("b", 1, std(strings.ToUpper(arnB), "b", nil)), wants("a", 1, std(arnB, "a", nil))},
			steps:   []accessentry.Step{create("a", std(arnB, "a", nil))},
			states:  map[string]accessentry.State{"a": accessentry.StateProgressing, "b": accessentry.StateConflict},
			with:    map[string]string{"b": "a"}},
		{name: "the loser's entry is taken over by the winner: retagged and brought to its translation",
			desired:  []accessentry.Desired{wants("young", 2, std(arnB, "y", nil)), wants("old", 1, std(arnB, "o", nil))},
			observed: []accessentry.Observed{ours("young", std(arnB, "y", nil))},
			steps: []accessentry.Step{
				tag("old", arnB),
				{Kind: accessentry.StepUpdate, PrincipalARN: arnB, Mapping: "old", Entry: accessentry.Entry{PrincipalARN: arnB, Type: "STANDARD", Username: "o"}},
			},
			states: map[string]accessentry.State{"old": accessentry.StateProgressing, "young": accessentry.StateConflict},
			with:   map[string]string{"young": "old"}},
		{name: "a mapping in conflict with an untagged entry still loses its old entry",
			desired:  []accessentry.Desired{wants("a", 0, std(arnOwner, "admin", nil))},
			observed: []accessentry.Observed{ours("a", std(arnA, "admin", nil)), notOurs(std(arnOwner, "", nil, adminPolicy))},
			steps:    []accessentry.Step{del("a", arnA)},
			states:   map[string]accessentry.State{"a": accessentry.StateConflict},
			with:     map[string]string{"a": arnOwner}},
	})
}

// TestPlanAssociatesBeforeDisassociating holds the order across entries
// too: the cluster admin policy moving from one entry to another is
// associated with the new one before it leaves the old one, and whatever
// the order of the input.
func TestPlanAssociatesBeforeDisassociating(t *testing.T) {
	desired := []accessentry.Desired{
		wants("z", 0, std(arnC, "c", nil, viewPolicy)),
		wants("b", 0, std(arnB, "b", nil, adminPolicy)),
		wants("a", 0, std(arnA, "a", nil, viewPolicy)),
	}
	observed := []accessentry.Observed{
		ours("z", std(arnC, "c", nil, editPolicy)),
		ours("a", std(arnA, "a", nil, adminPolicy)),
		ours("b", std(arnB, "b", nil)),
	}
	for _, reversed := range []bool{false, true} {
		d, o := slices.Clone(desired), slices.Clone(observed)
		if reversed {
			slices.Reverse(d)
			slices.Reverse(o)
		}
		got := accessentry.Plan(d, o, anyGuards)
		if len(got.Held) > 0 || got.Refusal != nil {
			t.Fatalf("held %+v, refusal %+v", got.Held, got.Refusal)
		}
		lastAssociate, firstDisassociate := -1, len(got.Steps)
		for i, s := range got.Steps {
			switch s.Kind {
			case accessentry.StepAssociate:
				lastAssociate = i
			case accessentry.StepDisassociate:
				firstDisassociate = min(firstDisassociate, i)
			}
		}
		if lastAssociate < 0 || firstDisassociate == len(got.Steps) {
			t.Fatalf("want associations and disassociations, got %+v", got.Steps)
		}
		if lastAssociate > firstDisassociate {
			t.Fatalf("a disassociation (step %d) comes before an association (step %d): %+v", firstDisassociate, lastAssociate, got.Steps)
		}
		if len(got.Steps) != 5 {
			t.Fatalf("want 3 associations and 2 disassociations, got %+v", got.Steps)
		}
	}
}

func TestPlanGuards(t *testing.T) {
	crd := &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: "the CRD is being deleted"}
	admins := std(arnA, "admin", nil, adminPolicy)
	viewer := std(arnB, "viewer", nil, viewPolicy)
	manyOurs := func(extra ...accessentry.Observed) []accessentry.Observed {
		var out []accessentry.Observed
		for _, n := range []string{"1", "2", "3", "4", "5", "6"} {
			out = append(out, ours("gone"+n, std("arn:aws:iam::111122223333:role/gone"+n, "g", nil)))
		}
		return append(out, extra...)
	}
	runPlanCases(t, []planCase{
		{name: "deleting the last cluster admin entry is held, the rest goes",
			desired:  []accessentry.Desired{wants("b", 0, viewer)},
			observed: []accessentry.Observed{ours("gone", admins)},
			guards:   anyGuards,
			steps:    []accessentry.Step{create("b", std(arnB, "viewer", nil)), associate("b", arnB, viewPolicy)},
			held:     held(accessentry.RefusedClusterAdmin, del("gone", arnA)),
			states:   map[string]accessentry.State{"b": accessentry.StateProgressing},
			refusal:  accessentry.RefusedClusterAdmin},
		{name: "the cluster creator's untagged cluster admin counts: deleting ours goes",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", admins), notOurs(std(arnOwner, "", nil, adminPolicy))},
			guards:   anyGuards,
			steps:    []accessentry.Step{del("gone", arnA)}},
		{name: "a cluster admin on namespaces does not count",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", admins), notOurs(std(arnOwner, "", nil, accessentry.Policy{ARN: clusterAdminARN, Namespaces: []string{"default"}}))},
			guards:   anyGuards,
			held:     held(accessentry.RefusedClusterAdmin, del("gone", arnA)),
			refusal:  accessentry.RefusedClusterAdmin},
		{name: "disassociating the last cluster admin is held, associating goes",
			desired:  []accessentry.Desired{wants("a", 0, std(arnA, "admin", nil, viewPolicy))},
			observed: []accessentry.Observed{ours("a", admins)},
			guards:   anyGuards,
			steps:    []accessentry.Step{associate("a", arnA, viewPolicy)},
			held:     held(accessentry.RefusedClusterAdmin, disassociate("a", arnA, clusterAdminARN)),
			states:   map[string]accessentry.State{"a": accessentry.StateBlocked},
			refusal:  accessentry.RefusedClusterAdmin},
		{name: "narrowing the last cluster admin to namespaces is held",
			desired:  []accessentry.Desired{wants("a", 0, std(arnA, "admin", nil, accessentry.Policy{ARN: clusterAdminARN, Namespaces: []string{"dev"}}))},
			observed: []accessentry.Observed{ours("a", admins)},
			guards:   anyGuards,
			held:     held(accessentry.RefusedClusterAdmin, associate("a", arnA, accessentry.Policy{ARN: clusterAdminARN, Namespaces: []string{"dev"}})),
			states:   map[string]accessentry.State{"a": accessentry.StateBlocked},
			refusal:  accessentry.RefusedClusterAdmin},
		{name: "cluster admin moving to another entry goes",
			desired:  []accessentry.Desired{wants("a", 0, std(arnA, "admin", nil)), wants("b", 0, std(arnB, "viewer", nil, adminPolicy))},
			observed: []accessentry.Observed{ours("a", admins), ours("b", std(arnB, "viewer", nil))},
			guards:   anyGuards,
			steps:    []accessentry.Step{associate("b", arnB, adminPolicy), disassociate("a", arnA, clusterAdminARN)},
			states:   map[string]accessentry.State{"a": accessentry.StateProgressing, "b": accessentry.StateProgressing}},
		{name: "a cluster without a cluster admin may go on without one",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", viewer)},
			guards:   anyGuards,
			steps:    []accessentry.Step{del("gone", arnB)}},
		{name: "deleting the last node entry is held",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", node(arnNodes, "FARGATE_LINUX"))},
			guards:   anyGuards,
			held:     held(accessentry.RefusedNodes, del("gone", arnNodes)),
			refusal:  accessentry.RefusedNodes},
		{name: "the type EC2 counts as a node entry",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", node(arnNodes, "EC2"))},
			guards:   anyGuards,
			held:     held(accessentry.RefusedNodes, del("gone", arnNodes)),
			refusal:  accessentry.RefusedNodes},
		{name: "an untagged node entry counts: deleting ours goes",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{ours("gone", node(arnNodes, "EC2_LINUX")), notOurs(node(arnNode2, "HYBRID_LINUX"))},
			guards:   anyGuards,
			steps:    []accessentry.Step{del("gone", arnNodes)}},
		{name: "recreating the last node entry as STANDARD is held, with what follows on it",
			desired:  []accessentry.Desired{wants("n", 0, std(arnNodes, "x", nil, viewPolicy))},
			observed: []accessentry.Observed{ours("n", node(arnNodes, "EC2_LINUX"))},
			guards:   anyGuards,
			held: held(accessentry.RefusedNodes,
				accessentry.Step{Kind: accessentry.StepRecreate, PrincipalARN: arnNodes, Mapping: "n", Entry: std(arnNodes, "x", nil)},
				associate("n", arnNodes, viewPolicy)),
			states:  map[string]accessentry.State{"n": accessentry.StateBlocked},
			refusal: accessentry.RefusedNodes},
		{name: "deleting more than the share of our entries is held; creates go",
			desired:  []accessentry.Desired{wants("b", 0, std(arnB, "viewer", nil))},
			observed: manyOurs(),
			guards:   anyGuards,
			steps:    []accessentry.Step{create("b", std(arnB, "viewer", nil))},
			held: held(accessentry.RefusedTooManyRemoved,
				del("gone1", "arn:aws:iam::111122223333:role/gone1"), del("gone2", "arn:aws:iam::111122223333:role/gone2"),
				del("gone3", "arn:aws:iam::111122223333:role/gone3"), del("gone4", "arn:aws:iam::111122223333:role/gone4"),
				del("gone5", "arn:aws:iam::111122223333:role/gone5"), del("gone6", "arn:aws:iam::111122223333:role/gone6")),
			states:  map[string]accessentry.State{"b": accessentry.StateProgressing},
			refusal: accessentry.RefusedTooManyRemoved},
		{name: "deleting exactly the share goes",
			desired: []accessentry.Desired{
				wants("gone1", 0, std("arn:aws:iam::111122223333:role/gone1", "g", nil)),
				wants("gone2", 0, std("arn:aws:iam::111122223333:role/gone2", "g", nil)),
				wants("gone3", 0, std("arn:aws:iam::111122223333:role/gone3", "g", nil)),
			},
			observed: manyOurs(),
			guards:   anyGuards,
			steps: []accessentry.Step{
				del("gone4", "arn:aws:iam::111122223333:role/gone4"), del("gone5", "arn:aws:iam::111122223333:role/gone5"),
				del("gone6", "arn:aws:iam::111122223333:role/gone6")},
			states: map[string]accessentry.State{"gone1": accessentry.StateSynced, "gone2": accessentry.StateSynced, "gone3": accessentry.StateSynced}},
		{name: "below the floor of 5 entries of ours every one may go",
			desired: []accessentry.Desired{},
			observed: []accessentry.Observed{ours("g1", std(arnA, "a", nil)), ours("g2", std(arnB, "b", nil)),
				ours("g3", std(arnC, "c", nil)), ours("g4", std(arnOwner, "o", nil)), notOurs(std(arnNode2, "x", nil)), notOurs(std(arnNodes, "y", nil))},
			guards: accessentry.Guards{MaxRemovedShare: 0},
			steps:  []accessentry.Step{del("g4", arnOwner), del("g1", arnA), del("g2", arnB), del("g3", arnC)}},
		{name: "Held holds every step",
			desired:  []accessentry.Desired{wants("b", 0, viewer), wants("c", 0, std(arnC, "c", nil))},
			observed: []accessentry.Observed{ours("gone", std(arnA, "a", nil)), ours("c", std(arnC, "c", nil))},
			guards:   accessentry.Guards{MaxRemovedShare: 1, Held: crd},
			held: held(awsauth.RefusedCRDUnusable,
				create("b", std(arnB, "viewer", nil)), associate("b", arnB, viewPolicy), del("gone", arnA)),
			states:  map[string]accessentry.State{"b": accessentry.StateBlocked, "c": accessentry.StateSynced},
			refusal: awsauth.RefusedCRDUnusable},
		{name: "Held is reported even with nothing to hold",
			desired:  []accessentry.Desired{},
			observed: []accessentry.Observed{notOurs(node(arnNodes, "EC2_LINUX"))},
			guards:   accessentry.Guards{Held: crd},
			refusal:  awsauth.RefusedCRDUnusable},
	})
}

// TestPlanAllowed checks that Guards.Allowed lets through exactly the plan
// whose hash it is, and neither another plan nor a Held pass.
func TestPlanAllowed(t *testing.T) {
	observed := []accessentry.Observed{ours("gone", std(arnA, "admin", nil, adminPolicy)), ours("n", node(arnNodes, "EC2_LINUX"))}
	desired := []accessentry.Desired{wants("b", 0, std(arnB, "viewer", nil))}
	refused := accessentry.Plan(desired, observed, anyGuards)
	if refused.Refusal == nil || refused.RefusedHash == "" || len(refused.Held) != 2 {
		t.Fatalf("want the deletions of the admin and node entries held with a hash, got %+v", refused)
	}

	allowed := accessentry.Plan(desired, observed, accessentry.Guards{MaxRemovedShare: 0.5, Allowed: refused.RefusedHash})
	if allowed.Refusal != nil || len(allowed.Held) != 0 {
		t.Fatalf("the allowed plan is still refused: %+v", allowed)
	}
	if want := []string{accessentry.RefusedClusterAdmin, accessentry.RefusedNodes}; !slices.Equal(reasons(allowed.Allowed), want) {
		t.Fatalf("allowed %v, want %v", reasons(allowed.Allowed), want)
	}
	want := []accessentry.Step{create("b", std(arnB, "viewer", nil)), del("n", arnNodes), del("gone", arnA)}
	if diff := gocmp.Diff(want, allowed.Steps, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("allowed steps (-want +got):\n%s", diff)
	}

	// Another plan (one more mapping) has another hash: still refused.
	other := accessentry.Plan(append(desired, wants("c", 0, std(arnC, "c", nil))), observed,
		accessentry.Guards{MaxRemovedShare: 0.5, Allowed: refused.RefusedHash})
	if other.Refusal == nil || len(other.Held) != 2 || other.RefusedHash == refused.RefusedHash {
		t.Fatalf("another plan went through on the first one's hash: %+v", other)
	}

	held := accessentry.Plan(desired, observed, accessentry.Guards{MaxRemovedShare: 0.5, Allowed: refused.RefusedHash,
		Held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: "no CRD"}})
	if len(held.Steps) != 0 || held.Refusal == nil || held.Refusal.Reason != awsauth.RefusedCRDUnusable {
		t.Fatalf("Allowed overrode Held: %+v", held)
	}

	// The hash does not depend on the order EKS lists entries in.
	reordered := accessentry.Plan(desired, []accessentry.Observed{observed[1], observed[0]}, anyGuards)
	if reordered.RefusedHash != refused.RefusedHash {
		t.Fatalf("the hash depends on the order of observed")
	}
}

func reasons(rs []awsauth.Refusal) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Reason)
	}
	return out
}

// TestPlanGuardsAgree is the case where one guard holds a step another
// counted on: the node guard holds the recreation that gave the cluster
// admin policy to a new entry, so the admin guard must then hold the
// disassociation from the old one.
func TestPlanGuardsAgree(t *testing.T) {
	desired := []accessentry.Desired{
		wants("n", 0, std(arnNodes, "x", nil, adminPolicy)),
		wants("a", 0, std(arnA, "admin", nil)),
	}
	observed := []accessentry.Observed{ours("n", node(arnNodes, "EC2_LINUX")), ours("a", std(arnA, "admin", nil, adminPolicy))}
	got := accessentry.Plan(desired, observed, anyGuards)
	if len(got.Steps) != 0 {
		t.Fatalf("want every step held, got %+v", got.Steps)
	}
	if r := reasons(got.Refusals); !slices.Contains(r, accessentry.RefusedClusterAdmin) || !slices.Contains(r, accessentry.RefusedNodes) {
		t.Fatalf("want both guards to refuse, got %v", r)
	}
}
