package awsauth

import "fmt"

// NodesGroup is the group that lets a node join. A render without any
// entry that grants it, over one with some, stops every node joining.
const NodesGroup = "system:nodes"

// Why aws-auth is kept as it is rather than written: the label of
// aws_auth_guardian_blocked_applies_total and the guard named in logs. Every
// reason is declared here, once.
const (
	// RefusedEmpty: the render has no entries, and aws-auth has some.
	RefusedEmpty = "EmptyRender"
	// RefusedNodes: the render drops the last entry granting NodesGroup.
	RefusedNodes = "NodesRemoved"
	// RefusedTooManyRemoved: the render removes more than the allowed share.
	RefusedTooManyRemoved = "TooManyRemoved"
	// RefusedUnrepresentable: taking over an aws-auth the operator did not
	// write would drop entries no IAMIdentityMapping can say.
	RefusedUnrepresentable = "Unrepresentable"
	// RefusedCRDUnusable: the IAMIdentityMapping CRD is missing or being
	// deleted, so no mapping can be read and nothing is rendered.
	RefusedCRDUnusable = "CRDUnusable"
)

// MinEntriesForShareGuard is the number of live entries below which
// removing a large share is ordinary (two of three, say) and not refused.
const MinEntriesForShareGuard = 5

// Refusal says why a render is not written: one of the Refused reasons and
// what would be lost, in words for a person.
type Refusal struct {
	Reason  string
	Message string
}

// CheckRemovals decides whether writing desired over live could lock people
// or nodes out (README, "Never locked out"). maxRemovedShare is the largest
// share (0..1) of live entries one write may remove. It returns nil when
// the write is safe.
func CheckRemovals(live, desired []Entry, maxRemovedShare float64) *Refusal {
	if len(live) == 0 {
		return nil
	}
	if len(desired) == 0 {
		return &Refusal{RefusedEmpty, fmt.Sprintf("the render has no entries, and aws-auth has %d", len(live))}
	}
	if grantsNodes(live) && !grantsNodes(desired) {
		return &Refusal{RefusedNodes, fmt.Sprintf("the render maps no identity to group %s, and aws-auth does: nodes could no longer join", NodesGroup)}
	}
	kept := make(map[string]bool, len(desired))
	for _, e := range desired {
		kept[e.Key()] = true
	}
	removed := 0
	for _, e := range live {
		if !kept[e.Key()] {
			removed++
		}
	}
	if len(live) >= MinEntriesForShareGuard && float64(removed) > maxRemovedShare*float64(len(live)) {
		return &Refusal{RefusedTooManyRemoved, fmt.Sprintf("the render removes %d of the %d entries of aws-auth, more than the %.0f%% allowed at once", removed, len(live), maxRemovedShare*100)}
	}
	return nil
}

func grantsNodes(entries []Entry) bool {
	for _, e := range entries {
		for _, g := range e.Groups {
			if g == NodesGroup {
				return true
			}
		}
	}
	return false
}
