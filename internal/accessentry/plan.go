package accessentry

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// MappingTag is the tag that makes an access entry the operator's: its
// value is the name of the IAMIdentityMapping the entry is for. An entry
// without it (the cluster creator's, those EKS makes for node groups and
// Fargate profiles, anyone else's) is never changed nor deleted.
const MappingTag = "iam.aws-auth-guardian.dev/mapping"

// AdoptedTag marks an entry of ours that someone else made and the
// operator adopted (StepTag) because it was the translation already: the
// creator's, one EKS made for a node group. When its mapping no longer
// wants it, it is released (StepRelease: both tags removed), not deleted,
// so that the operator never takes away an entry it did not make.
const AdoptedTag = "iam.aws-auth-guardian.dev/adopted"

// PrincipalKey is the one key access entries are matched by: the principal
// ARN in lower case. IAM keeps role and user names unique without case
// (one account cannot hold both Admins and admins), so two ARNs that differ
// only in case name one principal; Diff compares principals the same way,
// and the planner must agree with it, or it would recreate an entry that
// Diff calls equal. The path stays part of the key: Translate resolves a
// role to the ARN IAM holds, path included, which is the ARN EKS matches.
func PrincipalKey(arn string) string {
	return strings.ToLower(arn)
}

// DesiredKind says what the translation of a mapping came to.
type DesiredKind string

const (
	// DesiredEntry means the mapping translates to Desired.Entry.
	DesiredEntry DesiredKind = "Entry"
	// DesiredNotRepresentable means the mapping has no access entry (a
	// *NotRepresentable); it contributes nothing, and an entry tagged with
	// its name is deleted as that of a deleted mapping is.
	DesiredNotRepresentable DesiredKind = "NotRepresentable"
	// DesiredPrincipalNotFound means IAM has no such role; as
	// DesiredNotRepresentable.
	DesiredPrincipalNotFound DesiredKind = "PrincipalNotFound"
	// DesiredPending means the translation could not be finished this pass (the
	// role's ARN could not be resolved, IAM failed). The entries tagged
	// with its name are kept as they are: not knowing is no reason to
	// delete.
	DesiredPending DesiredKind = "Pending"
	// DesiredRefused means EKS refused a step toward this very translation
	// as invalid (or over its limits): asking again unchanged cannot
	// succeed, and stopping at it every pass would hold back every other
	// mapping. Its entries are kept as they are, as with DesiredPending,
	// until the controller asks EKS again.
	DesiredRefused DesiredKind = "Refused"
)

// Desired is one mapping and what it translates to.
type Desired struct {
	Name string
	// UID is the mapping's UID, carried to its Outcome so that its status
	// is written to this object and not to a successor of the same name.
	UID string
	// Created and Name settle which of two mappings of one principal wins,
	// as awsauth.Resolve settles it for aws-auth: the older, then the
	// first by name.
	Created time.Time
	Kind    DesiredKind
	// Entry is the translation; set with DesiredEntry only.
	Entry Entry
	// Err says why there is no entry, for the outcome's message; optional.
	Err error
}

// Observed is one access entry as ListAccessEntries, DescribeAccessEntry
// and ListAssociatedAccessPolicies return it: Entry.Policies are its
// associated policies, a policy without namespaces being on the whole
// cluster.
type Observed struct {
	Entry Entry
	Tags  map[string]string
}

// Mapping is the name the entry is tagged with, or "" when it is not ours.
func (o Observed) Mapping() string {
	return o.Tags[MappingTag]
}

// StepKind is what a Step does.
type StepKind string

// The steps, in the order Sync.Steps runs them: every kind before the
// next. Associations come before disassociations so that a policy moving
// between entries, or an entry's scope changing, never leaves a moment
// with neither; deletions come last, after what replaces them exists.
const (
	// StepTag tags PrincipalARN with MappingTag = Mapping: adopting an
	// untagged entry that already is the translation (Adopt, which adds
	// AdoptedTag too), or taking over an entry of ours that another
	// mapping's tag names.
	StepTag StepKind = "Tag"
	// StepRecreate deletes the entry of PrincipalARN and creates Entry (of
	// the same PrincipalARN) tagged with Mapping: EKS cannot change an
	// entry's type. Only an entry of ours is recreated; its policies
	// follow as StepAssociate.
	StepRecreate StepKind = "Recreate"
	// StepCreate creates Entry (without policies, which follow as
	// StepAssociate) tagged with Mapping.
	StepCreate StepKind = "Create"
	// StepUpdate sets the Username and KubernetesGroups of Entry on the
	// entry of PrincipalARN (UpdateAccessEntry).
	StepUpdate StepKind = "Update"
	// StepAssociate associates Policy, with its scope, with the entry of
	// PrincipalARN (AssociateAccessPolicy, which also changes the scope
	// of a policy associated already).
	StepAssociate StepKind = "Associate"
	// StepDisassociate disassociates Policy.ARN from the entry of
	// PrincipalARN.
	StepDisassociate StepKind = "Disassociate"
	// StepRelease removes MappingTag and AdoptedTag from the entry of
	// PrincipalARN, an adopted one, where StepDelete would delete an entry
	// the operator made. Access does not change.
	StepRelease StepKind = "Release"
	// StepDelete deletes the entry of PrincipalARN, one of ours: its
	// mapping is gone, has no entry any more, names another principal
	// now, or lost its principal to an older mapping.
	StepDelete StepKind = "Delete"
)

var stepOrder = []StepKind{StepTag, StepRecreate, StepCreate, StepUpdate, StepAssociate, StepDisassociate, StepRelease, StepDelete}

// Step is one call to EKS.
type Step struct {
	Kind StepKind
	// PrincipalARN names the entry the step acts on, as EKS holds it; for
	// StepCreate, the entry it creates.
	PrincipalARN string
	// Mapping is the mapping the step is for: the tag StepTag, StepCreate
	// and StepRecreate set; for StepDelete, the tag the entry carries.
	Mapping string
	// Entry is what StepCreate and StepRecreate create (no Policies) and
	// what StepUpdate sets (Username, KubernetesGroups).
	Entry Entry `json:",omitzero"`
	// Policy is what StepAssociate associates; StepDisassociate uses its
	// ARN.
	Policy Policy `json:",omitzero"`
	// Adopt is set on the StepTag that adopts an entry not ours.
	Adopt bool `json:",omitzero"`
}

// State is how far a mapping's access entry is.
type State string

const (
	// StateSynced means the entry is what the mapping asks for; no steps.
	StateSynced State = "Synced"
	// StateProgressing means the plan has steps for the mapping (or its
	// translation is pending).
	StateProgressing State = "Progressing"
	// StateConflict means the mapping's principal has an entry that is not ours
	// and differs from the translation, or an older mapping claims the
	// same principal. Outcome.With names which; nothing is done to it.
	StateConflict State = "Conflict"
	// StateBlocked means a guard holds back steps of the mapping; Outcome.Reason
	// is the guard's.
	StateBlocked State = "Blocked"
	// StateNoEntry means the mapping has no access entry (DesiredNotRepresentable,
	// DesiredPrincipalNotFound) and none of ours is left for it.
	StateNoEntry State = "NoEntry"
	// StateRefused means EKS refused the translation (DesiredRefused);
	// Outcome.Message gives EKS's reason.
	StateRefused State = "Refused"
)

// Outcome is what the plan means for one mapping.
type Outcome struct {
	UID   string
	State State
	// With names what a StateConflict is with: the principal ARN of the
	// entry that is not ours, or the older mapping's name.
	With string
	// Reason is the guard's Refused reason, for StateBlocked.
	Reason string
	// Message is for a person.
	Message string
}

// Why steps are held back, beside awsauth.RefusedCRDUnusable (which the
// caller passes as Guards.Held). The reasons shared with aws-auth are
// aws-auth's own words, so that one metric label means one thing.
const (
	// RefusedClusterAdmin means the plan leaves no entry with
	// AmazonEKSClusterAdminPolicy on the whole cluster, and there was one.
	RefusedClusterAdmin = "ClusterAdminRemoved"
	// RefusedNodes means the plan leaves no node entry, and there were some.
	RefusedNodes = awsauth.RefusedNodes
	// RefusedTooManyRemoved means the plan deletes more than the allowed share
	// of the operator's entries.
	RefusedTooManyRemoved = awsauth.RefusedTooManyRemoved
)

// NodeTypes are the access entry types that let nodes join: a plan that
// leaves none of them, over entries that had some, is refused.
var NodeTypes = []iamv1alpha1.AccessEntryType{
	iamv1alpha1.AccessEntryEC2Linux, iamv1alpha1.AccessEntryEC2Windows, iamv1alpha1.AccessEntryFargateLinux,
	iamv1alpha1.AccessEntryHybridLinux, "EC2",
}

// Guards is what the refuse-to-lock-out rules measure a plan against.
type Guards struct {
	// MaxRemovedShare is the largest share (0..1) of the operator's
	// entries one pass may delete, once there are at least
	// awsauth.MinEntriesForShareGuard of them.
	MaxRemovedShare float64
	// Held, when set, holds the whole pass: no step at all (the CRD is
	// unusable, so no mapping can be read). Allowed does not override it:
	// without mappings there is no plan to allow.
	Held *awsauth.Refusal
	// Allowed is the Sync.RefusedHash of a refused plan a person let
	// through: that plan, and only it, runs whole.
	Allowed string
}

// Held is a step a guard holds back, and the guard's reason.
type Held struct {
	Step   Step
	Reason string
}

// Sync is one pass of the access entry target.
type Sync struct {
	// Steps are to run in order; they leave out Held.
	Steps []Step
	// Held are the steps the guards hold back.
	Held []Held
	// Outcomes are by mapping name, one for every Desired.
	Outcomes map[string]Outcome
	// Refusal is the first guard that held anything (Guards.Held holds the
	// whole pass); Refusals, every one.
	Refusal  *awsauth.Refusal
	Refusals []awsauth.Refusal
	// RefusedHash is the identity of the whole plan, set when a guard
	// refused it: Guards.Allowed set to it lets exactly this plan through.
	RefusedHash string
	// Allowed are the refusals Guards.Allowed overrode.
	Allowed []awsauth.Refusal
}

// Plan decides the steps that bring the access entries from observed to
// desired, and holds back those the guards refuse. It is pure.
//
// Rules: an entry without MappingTag is never changed nor deleted; the one
// of a mapped principal is adopted (tagged) when it already equals the
// translation, and is otherwise a StateConflict. Of two mappings of one
// principal the older (then the first by name) wins, as awsauth.Resolve
// decides. An entry of ours whose mapping is gone, has no entry, or names
// another principal now is deleted; one whose type must change is
// recreated. A principal change is a create of the new entry and a delete
// of the old, in that order, so that the mapping is never without one.
//
// What a refusal holds back: only steps that remove what the guard
// protects (deletions, disassociations, recreations, a cluster admin
// association narrowed to namespaces) and the steps on an entry whose
// recreation is held. Creates, tags, updates and associations always go:
// they cannot lock anyone out, as aws-auth lets additions through.
func Plan(desired []Desired, observed []Observed, guards Guards) Sync {
	p := planner{observed: observed, outcomes: map[string]Outcome{}}
	p.plan(desired)
	slices.SortStableFunc(p.steps, compareSteps)
	s := Sync{Outcomes: p.outcomes}
	held := p.guard(guards, &s)
	for i, st := range p.steps {
		if reason, ok := held[i]; ok {
			s.Held = append(s.Held, Held{Step: st, Reason: reason})
		} else {
			s.Steps = append(s.Steps, st)
		}
	}
	p.settle(desired, &s)
	return s
}

type planner struct {
	observed []Observed
	steps    []Step
	outcomes map[string]Outcome
}

func (p *planner) add(s Step) {
	p.steps = append(p.steps, s)
}

func (p *planner) plan(desired []Desired) {
	ordered := slices.SortedFunc(slices.Values(desired), func(a, b Desired) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	byName := map[string]Desired{}
	winners := map[string]Desired{} // by PrincipalKey
	var keys []string
	for _, d := range ordered {
		if prev, dup := byName[d.Name]; dup {
			p.outcomes[d.Name] = Outcome{UID: d.UID, State: StateConflict, With: prev.Name,
				Message: fmt.Sprintf("another mapping of the name %s (UID %s) is planned already", d.Name, prev.UID)}
			continue
		}
		byName[d.Name] = d
		if d.Kind != DesiredEntry {
			continue
		}
		k := PrincipalKey(d.Entry.PrincipalARN)
		if w, taken := winners[k]; taken {
			p.outcomes[d.Name] = Outcome{UID: d.UID, State: StateConflict, With: w.Name,
				Message: fmt.Sprintf("the older mapping %s has the access entry of %s", w.Name, d.Entry.PrincipalARN)}
			continue
		}
		winners[k] = d
		keys = append(keys, k)
	}

	atKey := map[string][]int{}
	for i, o := range p.observed {
		k := PrincipalKey(o.Entry.PrincipalARN)
		atKey[k] = append(atKey[k], i)
	}
	// claimed are the observed entries of ours a winner keeps.
	claimed := map[int]bool{}
	for _, k := range keys {
		if i, ok := p.planEntry(winners[k], atKey[k]); ok {
			claimed[i] = true
		}
	}
	for i, o := range p.observed {
		name := o.Mapping()
		if name == "" || claimed[i] {
			continue
		}
		if d, ok := byName[name]; ok && (d.Kind == DesiredPending || d.Kind == DesiredRefused) {
			continue
		}
		kind := StepDelete
		if o.Tags[AdoptedTag] != "" {
			kind = StepRelease
		}
		p.add(Step{Kind: kind, PrincipalARN: o.Entry.PrincipalARN, Mapping: name})
	}
}

// planEntry plans the entry of winner d, given the observed entries of its
// principal; it returns the observed entry of ours it keeps, if any.
func (p *planner) planEntry(d Desired, at []int) (int, bool) {
	want := d.Entry
	var ours, others []int
	for _, i := range at {
		if p.observed[i].Mapping() != "" {
			ours = append(ours, i)
		} else {
			others = append(others, i)
		}
	}
	// d's own entry, already the translation, is kept beside others of
	// its principal (ARNs in another case), which are left alone:
	// adopting one of them would release d's, and the next pass adopt
	// that one back.
	synced := slices.ContainsFunc(ours, func(i int) bool {
		return p.observed[i].Mapping() == d.Name && Equal(want, p.observed[i].Entry)
	})
	if len(others) > 0 && !synced {
		// Not ours: adopt it if it already is the translation, and is the
		// principal's one such entry (entries of ours beside it, ARNs in
		// another case, go as duplicates).
		o := p.observed[others[0]]
		if len(others) == 1 && Equal(want, o.Entry) {
			p.add(Step{Kind: StepTag, PrincipalARN: o.Entry.PrincipalARN, Mapping: d.Name, Adopt: true})
			return others[0], true
		}
		p.outcomes[d.Name] = Outcome{UID: d.UID, State: StateConflict, With: o.Entry.PrincipalARN,
			Message: fmt.Sprintf("the access entry of %s is not this operator's (it has no tag %s) and differs from the translation; it is left as it is", o.Entry.PrincipalARN, MappingTag)}
		return 0, false
	}
	if len(ours) == 0 {
		p.create(d.Name, StepCreate, want, "")
		return 0, false
	}
	// Of several entries of ours for one principal (ARNs that differ in
	// case), keep the one tagged with d, then the one of d's exact ARN;
	// the others are deleted.
	keep := slices.MinFunc(ours, func(a, b int) int {
		oa, ob := p.observed[a], p.observed[b]
		return cmp.Or(
			boolOrder(oa.Mapping() == d.Name, ob.Mapping() == d.Name),
			boolOrder(oa.Entry.PrincipalARN == want.PrincipalARN, ob.Entry.PrincipalARN == want.PrincipalARN),
			strings.Compare(oa.Entry.PrincipalARN, ob.Entry.PrincipalARN))
	})
	got := p.observed[keep]
	c := Diff(want, got.Entry)
	if c.Recreate {
		p.create(d.Name, StepRecreate, want, got.Entry.PrincipalARN)
		return keep, true
	}
	if got.Mapping() != d.Name {
		p.add(Step{Kind: StepTag, PrincipalARN: got.Entry.PrincipalARN, Mapping: d.Name})
	}
	if c.Update {
		p.add(Step{Kind: StepUpdate, PrincipalARN: got.Entry.PrincipalARN, Mapping: d.Name,
			Entry: Entry{PrincipalARN: got.Entry.PrincipalARN, Type: got.Entry.Type, Username: want.Username, KubernetesGroups: slices.Clone(want.KubernetesGroups)}})
	}
	for _, pol := range c.Associate {
		p.add(Step{Kind: StepAssociate, PrincipalARN: got.Entry.PrincipalARN, Mapping: d.Name, Policy: pol})
	}
	for _, arn := range c.Disassociate {
		p.add(Step{Kind: StepDisassociate, PrincipalARN: got.Entry.PrincipalARN, Mapping: d.Name, Policy: Policy{ARN: arn}})
	}
	return keep, true
}

// create plans a StepCreate of want, or a StepRecreate of the entry of
// old as want, and the association of its policies. A recreated entry
// keeps the ARN EKS holds (which PrincipalKey, and Diff, call the same as
// want's): another entry of ours may hold want's exact ARN, to be deleted.
func (p *planner) create(mapping string, kind StepKind, want Entry, old string) {
	e := want
	e.Policies = nil
	e.KubernetesGroups = slices.Clone(want.KubernetesGroups)
	if kind == StepRecreate {
		e.PrincipalARN = old
	}
	p.add(Step{Kind: kind, PrincipalARN: e.PrincipalARN, Mapping: mapping, Entry: e})
	for _, pol := range want.Policies {
		p.add(Step{Kind: StepAssociate, PrincipalARN: e.PrincipalARN, Mapping: mapping, Policy: pol})
	}
}

func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

func compareSteps(a, b Step) int {
	return cmp.Or(
		cmp.Compare(slices.Index(stepOrder, a.Kind), slices.Index(stepOrder, b.Kind)),
		strings.Compare(PrincipalKey(a.PrincipalARN), PrincipalKey(b.PrincipalARN)),
		strings.Compare(a.PrincipalARN, b.PrincipalARN),
		strings.Compare(a.Policy.ARN, b.Policy.ARN))
}

// guard runs the guards over the plan and returns the steps they hold, by
// index, with the reason; it fills in the refusals of s.
func (p *planner) guard(g Guards, s *Sync) map[int]string {
	held := map[int]string{}
	if g.Held != nil {
		for i := range p.steps {
			held[i] = g.Held.Reason
		}
		s.Refusal, s.Refusals = g.Held, []awsauth.Refusal{*g.Held}
		return held
	}
	if len(p.steps) == 0 {
		return held
	}
	before := simulate(p.observed, nil)
	share := func(before, _ []Observed, steps []Step) *awsauth.Refusal {
		return checkShare(before, steps, g.MaxRemovedShare)
	}
	isDelete := func(st Step) bool { return st.Kind == StepDelete }
	checks := []struct {
		check func(before, after []Observed, steps []Step) *awsauth.Refusal
		holds func(Step) bool
	}{
		{checkClusterAdmin, p.removesClusterAdmin},
		{checkNodes, p.removesNode},
		{share, isDelete},
	}
	var refusals []awsauth.Refusal
	// Holding a step only keeps more of what was there, but it may hold a
	// step another guard counted on (a recreation that associated the
	// cluster admin policy): run the guards again until none holds more.
	for changed := true; changed; {
		changed = false
		for _, c := range checks {
			var going []Step
			for i, st := range p.steps {
				if _, ok := held[i]; !ok {
					going = append(going, st)
				}
			}
			r := c.check(before, simulate(p.observed, going), going)
			if r == nil {
				continue
			}
			if !slices.Contains(refusals, *r) {
				refusals = append(refusals, *r)
			}
			for i, st := range p.steps {
				if _, ok := held[i]; ok || !c.holds(st) {
					continue
				}
				changed = true
				held[i] = r.Reason
				if st.Kind == StepRecreate {
					// What follows on the recreated entry waits with it.
					for j, after := range p.steps {
						if _, ok := held[j]; !ok && j != i && PrincipalKey(after.PrincipalARN) == PrincipalKey(st.Entry.PrincipalARN) {
							held[j] = r.Reason
						}
					}
				}
			}
		}
	}
	if len(refusals) == 0 {
		return held
	}
	s.RefusedHash = hashSteps(p.steps)
	if g.Allowed == s.RefusedHash {
		s.Allowed = refusals
		return map[int]string{}
	}
	s.Refusal, s.Refusals = &refusals[0], refusals
	return held
}

// hashSteps is the identity of a plan: the sha256 of its steps, in order.
func hashSteps(steps []Step) string {
	data, err := json.Marshal(steps)
	if err != nil {
		panic(err) // plain data always marshals
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// settle gives every desired mapping its outcome from the steps.
func (p *planner) settle(desired []Desired, s *Sync) {
	for _, d := range desired {
		if o, ok := s.Outcomes[d.Name]; ok && o.State == StateConflict {
			continue
		}
		o := Outcome{UID: d.UID}
		heldIdx := slices.IndexFunc(s.Held, func(h Held) bool { return h.Step.Mapping == d.Name })
		going := slices.ContainsFunc(s.Steps, func(st Step) bool { return st.Mapping == d.Name })
		switch {
		case heldIdx >= 0:
			h := s.Held[heldIdx]
			o.State, o.Reason = StateBlocked, h.Reason
			o.Message = fmt.Sprintf("%s of the access entry of %s is held back: %s", h.Step.Kind, h.Step.PrincipalARN, refusalMessage(s, h.Reason))
		case going:
			o.State, o.Message = StateProgressing, "the access entry is being brought to the translation"
		case d.Kind == DesiredEntry:
			o.State, o.Message = StateSynced, "the access entry of "+d.Entry.PrincipalARN+" is the translation"
		case d.Kind == DesiredRefused:
			o.State, o.Message = StateRefused, "EKS refused the access entry of the translation"
			if d.Err != nil {
				o.Message += ": " + d.Err.Error()
			}
		case d.Kind == DesiredPending:
			o.State, o.Message = StateProgressing, "waiting for the translation"
			if d.Err != nil {
				o.Message += ": " + d.Err.Error()
			}
		default:
			o.State, o.Message = StateNoEntry, "the mapping has no access entry"
			if d.Err != nil {
				o.Message += ": " + d.Err.Error()
			}
		}
		s.Outcomes[d.Name] = o
	}
}

func refusalMessage(s *Sync, reason string) string {
	for _, r := range s.Refusals {
		if r.Reason == reason {
			return r.Message
		}
	}
	return reason
}

// simulate is the state of the entries after steps, in order.
func simulate(observed []Observed, steps []Step) []Observed {
	state := make([]Observed, 0, len(observed))
	for _, o := range observed {
		state = append(state, cloneObserved(o))
	}
	find := func(arn string) int {
		return slices.IndexFunc(state, func(o Observed) bool { return o.Entry.PrincipalARN == arn })
	}
	for _, st := range steps {
		i := find(st.PrincipalARN)
		switch st.Kind {
		case StepCreate:
			state = append(state, Observed{Entry: st.Entry, Tags: map[string]string{MappingTag: st.Mapping}})
		case StepRecreate:
			if i >= 0 {
				state = slices.Delete(state, i, i+1)
			}
			state = append(state, Observed{Entry: st.Entry, Tags: map[string]string{MappingTag: st.Mapping}})
		case StepDelete:
			if i >= 0 {
				state = slices.Delete(state, i, i+1)
			}
		case StepTag:
			if i >= 0 {
				state[i].Tags = maps.Clone(state[i].Tags)
				if state[i].Tags == nil {
					state[i].Tags = map[string]string{}
				}
				state[i].Tags[MappingTag] = st.Mapping
				if st.Adopt {
					state[i].Tags[AdoptedTag] = "true"
				}
			}
		case StepRelease:
			if i >= 0 {
				state[i].Tags = maps.Clone(state[i].Tags)
				delete(state[i].Tags, MappingTag)
				delete(state[i].Tags, AdoptedTag)
			}
		case StepUpdate:
			if i >= 0 {
				state[i].Entry.Username, state[i].Entry.KubernetesGroups = st.Entry.Username, st.Entry.KubernetesGroups
			}
		case StepAssociate:
			if i >= 0 {
				e := &state[i].Entry
				e.Policies = slices.DeleteFunc(e.Policies, func(p Policy) bool { return p.ARN == st.Policy.ARN })
				e.Policies = append(e.Policies, st.Policy)
			}
		case StepDisassociate:
			if i >= 0 {
				e := &state[i].Entry
				e.Policies = slices.DeleteFunc(e.Policies, func(p Policy) bool { return p.ARN == st.Policy.ARN })
			}
		}
	}
	return state
}

func cloneObserved(o Observed) Observed {
	c := Observed{Entry: o.Entry, Tags: map[string]string{}}
	c.Entry.KubernetesGroups = slices.Clone(o.Entry.KubernetesGroups)
	c.Entry.Policies = slices.Clone(o.Entry.Policies)
	for k, v := range o.Tags {
		c.Tags[k] = v
	}
	return c
}

// IsClusterAdmin says whether p is AmazonEKSClusterAdminPolicy, in any
// partition, on the whole cluster: what replaces system:masters.
func IsClusterAdmin(p Policy) bool {
	return len(p.Namespaces) == 0 && isClusterAdminARN(p.ARN)
}

func isClusterAdminARN(arn string) bool {
	m := policyARN.FindStringSubmatch(arn)
	return m != nil && m[2] == clusterAdmin
}

func hasClusterAdmin(e Entry) bool {
	return slices.ContainsFunc(e.Policies, IsClusterAdmin)
}

func countEntries(state []Observed, f func(Entry) bool) int {
	n := 0
	for _, o := range state {
		if f(o.Entry) {
			n++
		}
	}
	return n
}

// IsNode says whether e is a node entry (one of NodeTypes).
func IsNode(e Entry) bool {
	return slices.Contains(NodeTypes, e.Type)
}

func checkClusterAdmin(before, after []Observed, _ []Step) *awsauth.Refusal {
	had := countEntries(before, hasClusterAdmin)
	if had == 0 || countEntries(after, hasClusterAdmin) > 0 {
		return nil
	}
	return &awsauth.Refusal{Reason: RefusedClusterAdmin, Message: fmt.Sprintf(
		"the plan leaves no access entry with AmazonEKSClusterAdminPolicy on the whole cluster, and %d had it: no one could administer the cluster through access entries", had)}
}

// observedEntry is the observed entry of arn (exactly as EKS holds it).
func (p *planner) observedEntry(arn string) (Entry, bool) {
	i := slices.IndexFunc(p.observed, func(o Observed) bool { return o.Entry.PrincipalARN == arn })
	if i < 0 {
		return Entry{}, false
	}
	return p.observed[i].Entry, true
}

// removesClusterAdmin says whether st takes a cluster-scoped cluster admin
// association from an entry that has one.
func (p *planner) removesClusterAdmin(st Step) bool {
	e, ok := p.observedEntry(st.PrincipalARN)
	if !ok || !hasClusterAdmin(e) {
		return false
	}
	switch st.Kind {
	case StepDelete, StepRecreate:
		return true
	case StepDisassociate:
		return isClusterAdminARN(st.Policy.ARN)
	case StepAssociate:
		return isClusterAdminARN(st.Policy.ARN) && !IsClusterAdmin(st.Policy)
	}
	return false
}

func checkNodes(before, after []Observed, _ []Step) *awsauth.Refusal {
	had := countEntries(before, IsNode)
	if had == 0 || countEntries(after, IsNode) > 0 {
		return nil
	}
	return &awsauth.Refusal{Reason: RefusedNodes, Message: fmt.Sprintf(
		"the plan leaves no node access entry (%s), and %d were there: nodes could no longer join", nodeTypeList(), had)}
}

func nodeTypeList() string {
	names := make([]string, len(NodeTypes))
	for i, t := range NodeTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// removesNode says whether st takes away a node entry.
func (p *planner) removesNode(st Step) bool {
	e, ok := p.observedEntry(st.PrincipalARN)
	if !ok || !IsNode(e) {
		return false
	}
	return st.Kind == StepDelete || st.Kind == StepRecreate && !IsNode(st.Entry)
}

// checkShare refuses deleting more than maxShare of the entries of ours,
// once there are awsauth.MinEntriesForShareGuard of them, as
// awsauth.CheckRemovals does for aws-auth.
func checkShare(before []Observed, steps []Step, maxShare float64) *awsauth.Refusal {
	managed := 0
	for _, o := range before {
		if o.Mapping() != "" {
			managed++
		}
	}
	deleted := 0
	for _, st := range steps {
		if st.Kind == StepDelete {
			deleted++
		}
	}
	if managed < awsauth.MinEntriesForShareGuard || float64(deleted) <= maxShare*float64(managed) {
		return nil
	}
	return &awsauth.Refusal{Reason: RefusedTooManyRemoved, Message: fmt.Sprintf(
		"the plan deletes %d of the %d access entries this operator manages, more than the %.0f%% allowed at once", deleted, managed, maxShare*100)}
}
