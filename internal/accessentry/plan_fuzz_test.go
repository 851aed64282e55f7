package accessentry_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// eks is the test's own model of a cluster's access entries, keyed as EKS
// keys them, by the principal ARN exactly as given.
type eks map[string]accessentry.Observed

func newEKS(observed []accessentry.Observed) eks {
	m := eks{}
	for _, o := range observed {
		m[o.Entry.PrincipalARN] = copyObserved(o)
	}
	return m
}

func copyObserved(o accessentry.Observed) accessentry.Observed {
	o.Entry.KubernetesGroups = slices.Clone(o.Entry.KubernetesGroups)
	o.Entry.Policies = slices.Clone(o.Entry.Policies)
	o.Tags = maps.Clone(o.Tags)
	return o
}

// apply runs one step as EKS would, failing the test where EKS would
// refuse it (an entry that is not there, or there already).
func (m eks) apply(t *testing.T, s accessentry.Step) {
	t.Helper()
	o, exists := m[s.PrincipalARN]
	if s.Kind != accessentry.StepCreate && !exists {
		t.Fatalf("%s on %s, which has no entry", s.Kind, s.PrincipalARN)
	}
	switch s.Kind {
	case accessentry.StepCreate:
		if exists {
			t.Fatalf("Create of %s, which has an entry", s.PrincipalARN)
		}
		if len(s.Entry.Policies) > 0 {
			t.Fatalf("Create of %s with policies: they are associated apart", s.PrincipalARN)
		}
		m[s.PrincipalARN] = accessentry.Observed{Entry: s.Entry, Tags: map[string]string{accessentry.MappingTag: s.Mapping}}
	case accessentry.StepRecreate:
		if s.Entry.PrincipalARN != s.PrincipalARN {
			t.Fatalf("Recreate of %s as %s: EKS recreates an entry of one principal", s.PrincipalARN, s.Entry.PrincipalARN)
		}
		delete(m, s.PrincipalARN)
		m[s.Entry.PrincipalARN] = accessentry.Observed{Entry: s.Entry, Tags: map[string]string{accessentry.MappingTag: s.Mapping}}
	case accessentry.StepDelete:
		delete(m, s.PrincipalARN)
	case accessentry.StepTag:
		if o.Tags == nil {
			o.Tags = map[string]string{}
		}
		o.Tags[accessentry.MappingTag] = s.Mapping
		if s.Adopt {
			o.Tags[accessentry.AdoptedTag] = "true"
		}
		m[s.PrincipalARN] = o
	case accessentry.StepRelease:
		if o.Tags[accessentry.AdoptedTag] == "" {
			t.Fatalf("Release of %s, which the operator made: it is deleted", s.PrincipalARN)
		}
		delete(o.Tags, accessentry.MappingTag)
		delete(o.Tags, accessentry.AdoptedTag)
		m[s.PrincipalARN] = o
	case accessentry.StepUpdate:
		if o.Entry.Type != iamv1alpha1.AccessEntryStandard {
			t.Fatalf("Update of the %s entry %s", o.Entry.Type, s.PrincipalARN)
		}
		o.Entry.Username, o.Entry.KubernetesGroups = s.Entry.Username, s.Entry.KubernetesGroups
		m[s.PrincipalARN] = o
	case accessentry.StepAssociate, accessentry.StepDisassociate:
		if o.Entry.Type != iamv1alpha1.AccessEntryStandard {
			t.Fatalf("%s on the %s entry %s", s.Kind, o.Entry.Type, s.PrincipalARN)
		}
		var kept []accessentry.Policy
		for _, p := range o.Entry.Policies {
			if p.ARN != s.Policy.ARN {
				kept = append(kept, p)
			}
		}
		if s.Kind == accessentry.StepAssociate {
			kept = append(kept, s.Policy)
		}
		o.Entry.Policies = kept
		m[s.PrincipalARN] = o
	default:
		t.Fatalf("unknown step %q", s.Kind)
	}
}

func (m eks) list() []accessentry.Observed {
	var out []accessentry.Observed
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, copyObserved(m[k]))
	}
	return out
}

// adminEntries counts the entries with the cluster admin policy on the
// whole cluster; nodeEntries, those of a node type. Both written out here
// rather than taken from plan.go.
func (m eks) adminEntries() int {
	n := 0
	for _, o := range m {
		for _, p := range o.Entry.Policies {
			if strings.HasSuffix(p.ARN, ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy") && len(p.Namespaces) == 0 {
				n++
				break
			}
		}
	}
	return n
}

func (m eks) nodeEntries() int {
	n := 0
	for _, o := range m {
		switch o.Entry.Type {
		case "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "HYBRID_LINUX", "EC2":
			n++
		}
	}
	return n
}

// bytes reads a fuzz input one choice at a time; past its end every
// choice is 0.
type bytesReader struct{ data []byte }

func (r *bytesReader) next(n int) int {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return int(b) % n
}

var (
	fuzzPrincipals = []string{arnA, arnB, arnNodes, arnOwner, strings.Replace(arnA, "team/a", "Team/A", 1)}
	fuzzTypes      = []iamv1alpha1.AccessEntryType{"STANDARD", "EC2_LINUX", "FARGATE_LINUX", "EC2", "STANDARD"}
	fuzzPolicies   = [][]accessentry.Policy{
		nil, {adminPolicy}, {{ARN: clusterAdminARN, Namespaces: []string{"dev"}}}, {viewPolicy}, {adminPolicy, viewPolicy},
	}
	fuzzTags  = []string{"", "m0", "m1", "m2", "gone", ""}
	fuzzKinds = []accessentry.DesiredKind{
		accessentry.DesiredEntry, accessentry.DesiredEntry, accessentry.DesiredNotRepresentable,
		accessentry.DesiredPrincipalNotFound, accessentry.DesiredPending, accessentry.DesiredRefused,
	}
)

func fuzzEntry(r *bytesReader) accessentry.Entry {
	e := accessentry.Entry{PrincipalARN: fuzzPrincipals[r.next(len(fuzzPrincipals))], Type: fuzzTypes[r.next(len(fuzzTypes))]}
	username, policies := []string{"u", "v"}[r.next(2)], fuzzPolicies[r.next(len(fuzzPolicies))]
	if e.Type == "STANDARD" {
		e.Username, e.Policies = username, slices.Clone(policies)
		if r.next(2) == 1 {
			e.KubernetesGroups = []string{"ops"}
		}
	}
	return e
}

func fuzzInput(data []byte) ([]accessentry.Desired, []accessentry.Observed, accessentry.Guards, bool) {
	r := &bytesReader{data: data}
	var observed []accessentry.Observed
	seen := map[string]bool{}
	for range r.next(7) {
		e := fuzzEntry(r)
		tagValue := fuzzTags[r.next(len(fuzzTags))]
		if seen[e.PrincipalARN] {
			continue // EKS holds one entry per ARN
		}
		seen[e.PrincipalARN] = true
		o := accessentry.Observed{Entry: e, Tags: map[string]string{"other": "x"}}
		if tagValue != "" {
			o.Tags[accessentry.MappingTag] = tagValue
			if r.next(3) == 0 {
				o.Tags[accessentry.AdoptedTag] = "true"
			}
		}
		observed = append(observed, o)
	}
	var desired []accessentry.Desired
	for i := range 3 {
		d := wants("m"+string(rune('0'+i)), r.next(3), fuzzEntry(r))
		d.Kind = fuzzKinds[r.next(len(fuzzKinds))]
		if r.next(5) == 0 {
			continue // the mapping is deleted
		}
		if d.Kind != accessentry.DesiredEntry {
			d.Entry = accessentry.Entry{}
		}
		desired = append(desired, d)
	}
	guards := accessentry.Guards{MaxRemovedShare: float64(r.next(3)) / 2}
	allow := r.next(4) == 0
	return desired, observed, guards, allow
}

// FuzzPlan checks what must hold of every plan: no step touches an entry
// that is not ours but the tagging of one equal to its translation; the
// steps run on EKS without error; association comes before
// disassociation on every entry; after the steps, a cluster that had a
// cluster admin entry, or node entries, still has one unless a person
// allowed the plan; deletions stay within the share; nothing runs while
// Held; and a plan run whole leaves nothing to do on the next pass.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 1, 0, 1, 0, 4, 2, 0, 0, 1, 0, 1, 5, 3, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{6, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 3, 2, 1, 2, 0, 3, 3, 0, 1, 0, 4, 4, 0, 4, 0, 0, 2, 0, 2, 3, 1, 0, 2, 0, 1, 0, 1, 0, 1, 1, 2, 2, 1, 1, 0})
	f.Add([]byte{2, 2, 1, 0, 0, 0, 3, 3, 3, 0, 0, 0, 4, 0, 2, 0, 3, 1, 1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 2, 2, 3, 0, 0, 0, 3, 3, 3, 0, 4, 0, 0, 4, 2, 3, 0, 0, 4, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		desired, observed, guards, allow := fuzzInput(data)
		plan := accessentry.Plan(desired, observed, guards)
		if allow && plan.RefusedHash != "" {
			guards.Allowed = plan.RefusedHash
			plan = accessentry.Plan(desired, observed, guards)
			if plan.Refusal != nil || len(plan.Held) > 0 {
				t.Fatalf("the allowed plan is refused: %+v", plan)
			}
		}
		checkPlan(t, desired, observed, guards, plan)

		held := accessentry.Guards{MaxRemovedShare: guards.MaxRemovedShare, Allowed: guards.Allowed,
			Held: &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: "no CRD"}}
		if p := accessentry.Plan(desired, observed, held); len(p.Steps) > 0 || p.Refusal == nil {
			t.Fatalf("steps while Held: %+v", p)
		}
	})
}

func checkPlan(t *testing.T, desired []accessentry.Desired, observed []accessentry.Observed, guards accessentry.Guards, plan accessentry.Sync) {
	t.Helper()
	before := newEKS(observed)
	byName := map[string]accessentry.Desired{}
	for _, d := range desired {
		byName[d.Name] = d
		if _, ok := plan.Outcomes[d.Name]; !ok {
			t.Fatalf("no outcome for %s", d.Name)
		}
	}
	untaggedKeys := map[string]bool{}
	for _, o := range observed {
		if o.Tags[accessentry.MappingTag] == "" {
			untaggedKeys[strings.ToLower(o.Entry.PrincipalARN)] = true
		}
	}
	for _, s := range slices.Concat(plan.Steps, heldSteps(plan.Held)) {
		if o, ok := before[s.PrincipalARN]; ok && o.Tags[accessentry.MappingTag] == "" {
			d, mapped := byName[s.Mapping]
			if s.Kind != accessentry.StepTag || !mapped || d.Kind != accessentry.DesiredEntry || !accessentry.Equal(d.Entry, o.Entry) {
				t.Fatalf("%s touches the untagged entry %+v", s.Kind, o)
			}
		}
		if (s.Kind == accessentry.StepCreate || s.Kind == accessentry.StepRecreate) && untaggedKeys[strings.ToLower(s.Entry.PrincipalARN)] {
			t.Fatalf("%s of %s, whose principal has an untagged entry", s.Kind, s.Entry.PrincipalARN)
		}
	}
	disassociated := map[string]bool{}
	for _, s := range plan.Steps {
		k := strings.ToLower(s.PrincipalARN)
		switch s.Kind {
		case accessentry.StepDisassociate:
			disassociated[k] = true
		case accessentry.StepAssociate:
			if disassociated[k] {
				t.Fatalf("an association on %s after a disassociation: %+v", s.PrincipalARN, plan.Steps)
			}
		}
	}
	after := newEKS(observed)
	for _, s := range plan.Steps {
		after.apply(t, s)
	}
	allowed := len(plan.Allowed) > 0
	if !allowed && before.adminEntries() > 0 && after.adminEntries() == 0 {
		t.Fatalf("the last cluster admin entry is gone: %+v", plan.Steps)
	}
	if !allowed && before.nodeEntries() > 0 && after.nodeEntries() == 0 {
		t.Fatalf("the last node entry is gone: %+v", plan.Steps)
	}
	managed, deleted := 0, 0
	for _, o := range observed {
		if o.Tags[accessentry.MappingTag] != "" {
			managed++
		}
	}
	adopted := map[string]bool{}
	for _, o := range observed {
		adopted[o.Entry.PrincipalARN] = o.Tags[accessentry.AdoptedTag] != ""
	}
	kept := map[string]bool{}
	for _, d := range desired {
		kept[d.Name] = d.Kind == accessentry.DesiredPending || d.Kind == accessentry.DesiredRefused
	}
	for _, s := range plan.Steps {
		if s.Kind == accessentry.StepDelete {
			deleted++
		}
		// An entry the operator did not make is given back, never deleted.
		if s.Kind == accessentry.StepDelete && adopted[s.PrincipalARN] {
			t.Fatalf("the adopted entry of %s is deleted", s.PrincipalARN)
		}
		// Not knowing the translation, or EKS refusing it, is no reason
		// to take away what the mapping had.
		if s.Kind == accessentry.StepDelete && kept[s.Mapping] {
			t.Fatalf("the entry of %s is deleted while its translation is %s: %+v", s.Mapping, "pending or refused", s)
		}
	}
	if !allowed && managed >= awsauth.MinEntriesForShareGuard && float64(deleted) > guards.MaxRemovedShare*float64(managed) {
		t.Fatalf("%d of %d entries deleted, share %v", deleted, managed, guards.MaxRemovedShare)
	}
	if (plan.Refusal != nil) != (len(plan.Held) > 0) {
		t.Fatalf("refusal %+v with %d steps held", plan.Refusal, len(plan.Held))
	}
	if len(plan.Held) == 0 {
		again := accessentry.Plan(desired, after.list(), guards)
		if len(again.Steps)+len(again.Held) > 0 {
			t.Fatalf("the next pass over the result still has steps %+v (held %+v); the first had %+v", again.Steps, again.Held, plan.Steps)
		}
	}
}

func heldSteps(held []accessentry.Held) []accessentry.Step {
	var out []accessentry.Step
	for _, h := range held {
		out = append(out, h.Step)
	}
	return out
}
