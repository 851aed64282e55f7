// Package migrate decides what switching an EKS cluster to the API
// authentication mode would take away: for every identity aws-auth grants,
// what access entry the operator makes of it, whether the cluster holds
// that entry already, and, if not, why the switch would change its access.
//
// `manager migrate` prints its Report; the operator's access entry
// controller counts its blockers (aws_auth_guardian_api_mode_blockers). Both
// call Analyze, so that what one says blocks the switch the other says too.
// Analyze is pure; Desire, which asks IAM for a role's path, is the one part
// that calls out, and both callers use it as well.
package migrate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/accessentry"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// Input is what Analyze weighs.
type Input struct {
	// Mappings are the identities aws-auth is made of, each with its
	// translation (Desire). Those aws-auth does not hold (invalid, or
	// shadowed by an older mapping of the same identity, as awsauth.Resolve
	// settles) grant nothing today and are left out.
	Mappings []Mapping
	// Unreadable are what aws-auth holds that could not become a mapping
	// (adopt.Adoption.Unrepresentable), one sentence each. Each blocks: what
	// it grants cannot be checked against the access entries.
	Unreadable []string
	// Cluster is what EKS holds; nil when it was not read.
	Cluster *Cluster
}

// Mapping is one identity aws-auth grants.
type Mapping struct {
	// Grant is the mapping as aws-auth holds it (managed.MappingInput).
	Grant awsauth.Mapping
	// Desired is its translation, resolved (Desire).
	Desired accessentry.Desired
}

// Cluster is what EKS holds.
type Cluster struct {
	// Mode is the authentication mode: CONFIG_MAP (the cluster takes no
	// access entries, so Entries is empty), API_AND_CONFIG_MAP or API.
	Mode string
	// Entries are every access entry of the cluster, the operator's and
	// everyone else's, with their policies and tags.
	Entries []accessentry.Observed
}

// The field values of a report. They are part of `manager migrate -o
// yaml|json`, which CI reads: do not rename them.
const (
	// Existing: what the cluster holds for the identity.
	ExistingNone       = "none"       // no access entry
	ExistingEqual      = "equal"      // an entry equal to the translation
	ExistingDiffers    = "differs"    // an entry that differs in Differs
	ExistingUnknown    = "unknown"    // the translation could not be finished (IAM failed)
	ExistingNotChecked = "notChecked" // the cluster was not read

	// Blocker kinds.
	BlockIdentity     = "identity"     // an identity that would lose or change its access
	BlockNode         = "node"         // a node role without its node entry
	BlockClusterAdmin = "clusterAdmin" // no entry left with AmazonEKSClusterAdminPolicy on the whole cluster
	BlockUnreadable   = "unreadable"   // something in aws-auth that could not be read as a mapping

	// Verdicts.
	VerdictReady      = "ready"
	VerdictBlocked    = "blocked"
	VerdictNotChecked = "notChecked"
)

// Report is what switching to API mode now would do.
type Report struct {
	// AuthenticationMode is the cluster's, "" when it was not read.
	AuthenticationMode string `json:"authenticationMode,omitempty"`
	// Checked says whether the cluster's access entries were compared.
	Checked bool `json:"checked"`
	// AccessEntries counts the cluster's entries, of anyone.
	AccessEntries int `json:"accessEntries"`
	// Identities are the identities aws-auth grants, sorted by identity.
	Identities []Row `json:"identities"`
	// OtherEntries are the entries no identity of aws-auth names: they keep
	// their access in API mode. Informational.
	OtherEntries []OtherEntry `json:"otherEntries,omitempty"`
	// Unreadable is Input.Unreadable.
	Unreadable []string `json:"unreadable,omitempty"`
	// Blockers are what stands in the way of API mode, each once.
	Blockers []Blocker `json:"blockers"`
	// Verdict is VerdictReady, VerdictBlocked or, when the cluster was not
	// read and nothing cannot move, VerdictNotChecked.
	Verdict string `json:"verdict"`
}

// Row is one identity of aws-auth.
type Row struct {
	// Mapping is the name of its IAMIdentityMapping (for aws-auth read by
	// `manager migrate`, the name `manager import` gives it).
	Mapping string `json:"mapping"`
	// Identity is the role or user ARN, or the account, as aws-auth holds it.
	Identity string   `json:"identity"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	// Node says whether aws-auth lets it join nodes (the group system:nodes).
	Node bool `json:"node"`
	// Becomes is the access entry the operator makes of it; absent when it
	// cannot have one (CannotMove says why) or its translation is unknown.
	Becomes *iamv1alpha1.AccessEntryStatus `json:"becomes,omitempty"`
	// CannotMove is why it has no access entry: the rule it breaks.
	CannotMove string `json:"cannotMove,omitempty"`
	// Existing is one of the Existing values.
	Existing string `json:"existing"`
	// Differs names what differs, of type, username, groups, policies.
	Differs []string `json:"differs,omitempty"`
	// Entry is the access entry the cluster holds for it, if any.
	Entry *iamv1alpha1.AccessEntryStatus `json:"entry,omitempty"`
	// OwnedBy is the mapping named by the existing entry's tag; absent when
	// the entry is not the operator's (or there is none).
	OwnedBy string `json:"ownedBy,omitempty"`
	// Blocks says whether it stands in the way of API mode.
	Blocks bool `json:"blocks"`
	// Why says, for a person, what API mode would do to it.
	Why string `json:"why"`
}

// OtherEntry is an access entry that no identity of aws-auth names.
type OtherEntry struct {
	Entry   iamv1alpha1.AccessEntryStatus `json:"entry"`
	OwnedBy string                        `json:"ownedBy,omitempty"`
}

// Blocker is one thing that stands in the way of API mode.
type Blocker struct {
	// Kind is one of the Block values.
	Kind string `json:"kind"`
	// Mapping and Identity name the row it is about; absent for
	// BlockClusterAdmin and BlockUnreadable.
	Mapping  string `json:"mapping,omitempty"`
	Identity string `json:"identity,omitempty"`
	Why      string `json:"why"`
}

// BlockingMappings are the names of the mappings among the blockers
// (BlockIdentity and BlockNode), in the blockers' order.
func (r Report) BlockingMappings() []string {
	var names []string
	for _, b := range r.Blockers {
		if b.Mapping != "" {
			names = append(names, b.Mapping)
		}
	}
	return names
}

// Analyze compares what aws-auth grants with what the cluster holds and
// says what API mode would take away. It is pure.
func Analyze(in Input) Report {
	r := Report{Checked: in.Cluster != nil, Identities: []Row{}, Blockers: []Blocker{}, Unreadable: in.Unreadable}
	var entries []accessentry.Observed
	if in.Cluster != nil {
		r.AuthenticationMode = cmp.Or(in.Cluster.Mode, "CONFIG_MAP")
		entries = in.Cluster.Entries
		r.AccessEntries = len(entries)
	}
	byKey := make(map[string]accessentry.Observed, len(entries))
	for _, o := range entries {
		byKey[accessentry.PrincipalKey(o.Entry.PrincipalARN)] = o
	}
	claimed := map[string]bool{}
	for _, m := range granted(in.Mappings) {
		row, key := analyzeOne(m, byKey, r.Checked)
		if key != "" {
			claimed[key] = true
		}
		r.Identities = append(r.Identities, row)
	}
	slices.SortFunc(r.Identities, func(a, b Row) int {
		return cmp.Or(strings.Compare(a.Identity, b.Identity), strings.Compare(a.Mapping, b.Mapping))
	})
	for _, o := range entries {
		if !claimed[accessentry.PrincipalKey(o.Entry.PrincipalARN)] {
			r.OtherEntries = append(r.OtherEntries, OtherEntry{Entry: o.Entry.Status(), OwnedBy: o.Mapping()})
		}
	}
	slices.SortFunc(r.OtherEntries, func(a, b OtherEntry) int { return strings.Compare(a.Entry.PrincipalARN, b.Entry.PrincipalARN) })

	for _, s := range in.Unreadable {
		r.Blockers = append(r.Blockers, Blocker{Kind: BlockUnreadable, Why: s})
	}
	for _, row := range r.Identities {
		if !row.Blocks {
			continue
		}
		kind := BlockIdentity
		if row.Node {
			kind = BlockNode
		}
		r.Blockers = append(r.Blockers, Blocker{Kind: kind, Mapping: row.Mapping, Identity: row.Identity, Why: row.Why})
	}
	if r.Checked && !slices.ContainsFunc(entries, func(o accessentry.Observed) bool {
		return slices.ContainsFunc(o.Entry.Policies, accessentry.IsClusterAdmin)
	}) {
		r.Blockers = append(r.Blockers, Blocker{Kind: BlockClusterAdmin, Why: whyNoClusterAdmin})
	}
	switch {
	case len(r.Blockers) > 0:
		r.Verdict = VerdictBlocked
	case r.Checked:
		r.Verdict = VerdictReady
	default:
		r.Verdict = VerdictNotChecked
	}
	return r
}

const whyNoClusterAdmin = "no access entry, of anyone, has AmazonEKSClusterAdminPolicy on the whole cluster: in API mode no one could administer the cluster " +
	"or its access entries from inside it; create one first (a break-glass role's)"

// granted are the mappings aws-auth holds: valid, and not shadowed by an
// older mapping of the same identity (awsauth.Resolve, as the render
// decides).
func granted(mappings []Mapping) []Mapping {
	grants := make([]awsauth.Mapping, len(mappings))
	for i, m := range mappings {
		grants[i] = m.Grant
	}
	res := awsauth.Resolve(grants)
	var out []Mapping
	for _, m := range mappings {
		if o, ok := res.Outcomes[m.Grant.Name]; ok && o.Err == nil && o.ShadowedBy == "" {
			out = append(out, m)
		}
	}
	return out
}

// analyzeOne is the row of one identity, and the principal key of the
// entry it is compared with ("" for none).
func analyzeOne(m Mapping, entries map[string]accessentry.Observed, checked bool) (Row, string) {
	g, d := m.Grant, m.Desired
	row := Row{
		Mapping:  g.Name,
		Identity: cmp.Or(g.ARN, g.AccountID),
		Username: g.Username,
		Groups:   slices.Clone(g.Groups),
		Node:     slices.Contains(g.Groups, "system:nodes"),
	}
	lose := "in API mode it would lose the access aws-auth gives it"
	if row.Node {
		lose = "in API mode its nodes could not join the cluster"
	}
	switch d.Kind {
	case accessentry.DesiredNotRepresentable:
		row.CannotMove = errText(d.Err)
		row.Existing, row.Blocks = ExistingNone, true
		row.Why = "it cannot become an access entry, so " + lose + "; " + row.CannotMove
		if !checked {
			row.Existing = ExistingNotChecked
		} else {
			if o, ok := entries[accessentry.PrincipalKey(g.ARN)]; g.ARN != "" && ok {
				// Someone made an entry for it by hand: it is what API
				// mode gives, but not what aws-auth gives.
				row.Existing, row.OwnedBy, row.Entry = ExistingDiffers, o.Mapping(), statusOf(o)
				row.Why = "it has an access entry, but no access entry can give what aws-auth gives it, so in API mode its access would change; " + row.CannotMove
				return row, accessentry.PrincipalKey(g.ARN)
			}
		}
		return row, ""
	case accessentry.DesiredPrincipalNotFound:
		row.Existing = ExistingNone
		row.Why = errText(d.Err) + ": aws-auth grants nothing to it today, so API mode takes nothing away (the operator makes its entry once the role exists)"
		return row, ""
	case accessentry.DesiredPending:
		row.Existing, row.Blocks = ExistingUnknown, true
		row.Why = "it could not be checked: " + errText(d.Err)
		return row, ""
	case accessentry.DesiredRefused:
		row.Existing, row.Blocks = ExistingNone, true
		row.Why = "EKS refused its access entry (" + errText(d.Err) + "), so " + lose
		key := accessentry.PrincipalKey(g.ARN)
		if o, ok := entries[key]; ok {
			row.Existing, row.OwnedBy, row.Entry = ExistingDiffers, o.Mapping(), statusOf(o)
			return row, key
		}
		return row, ""
	}

	want := d.Entry.Status()
	row.Becomes = &want
	if !checked {
		row.Existing = ExistingNotChecked
		row.Why = "it can become this access entry; the cluster's entries were not read"
		return row, ""
	}
	key := accessentry.PrincipalKey(d.Entry.PrincipalARN)
	o, ok := entries[key]
	if !ok {
		row.Existing, row.Blocks = ExistingNone, true
		row.Why = "no access entry yet, so " + lose
		if row.Node {
			row.Why = "a node role without its " + string(d.Entry.Type) + " access entry: " + lose
		}
		return row, ""
	}
	row.OwnedBy, row.Entry = o.Mapping(), statusOf(o)
	row.Differs = differs(d.Entry, o.Entry)
	if len(row.Differs) == 0 {
		row.Existing = ExistingEqual
		row.Why = "its access entry is equal: API mode changes nothing for it"
		return row, key
	}
	row.Existing, row.Blocks = ExistingDiffers, true
	row.Why = fmt.Sprintf("its access entry differs in %s, so in API mode it would get the entry's access instead of what aws-auth gives it", strings.Join(row.Differs, ", "))
	if row.Node && slices.Contains(row.Differs, "type") {
		row.Why = fmt.Sprintf("a node role whose access entry is %s, not %s: %s", o.Entry.Type, d.Entry.Type, lose)
	}
	return row, key
}

// differs names what in got is not want, as accessentry.Diff compares:
// of a node entry only the type.
func differs(want, got accessentry.Entry) []string {
	c := accessentry.Diff(want, got)
	if c.None() {
		return nil
	}
	if c.Recreate {
		return []string{"type"}
	}
	var out []string
	if want.Username != got.Username {
		out = append(out, "username")
	}
	if c.Update && !sameSet(want.KubernetesGroups, got.KubernetesGroups) {
		out = append(out, "groups")
	}
	if len(c.Associate) > 0 || len(c.Disassociate) > 0 {
		out = append(out, "policies")
	}
	return out
}

func statusOf(o accessentry.Observed) *iamv1alpha1.AccessEntryStatus {
	s := o.Entry.Status()
	return &s
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}
