package awsauth

import "fmt"

// NodesGroup is the group that lets a node join. A render without any
// entry that grants it, over one with some, stops every node joining.
const NodesGroup = "system:nodes"

// Why a render is refused, as metric labels and in messages.
const (
	WipeEmpty          = "EmptyRender"
	WipeNodes          = "NodesRemoved"
	WipeTooManyRemoved = "TooManyRemoved"
)

// MinEntriesForShareGuard is the number of live entries below which
// removing a large share is ordinary (two of three, say) and not refused.
const MinEntriesForShareGuard = 5

// Wipe is a refusal: what would be lost, in words for a person.
type Wipe struct {
	Reason  string
	Message string
}

// CheckWipe decides whether writing desired over live could lock people or
// nodes out (README, "Never locked out"). maxRemovedShare is the largest
// share (0..1) of live entries one write may remove. It returns nil when
// the write is safe.
func CheckWipe(live, desired []Entry, maxRemovedShare float64) *Wipe {
	if len(live) == 0 {
		return nil
	}
	if len(desired) == 0 {
		return &Wipe{WipeEmpty, fmt.Sprintf("the render has no entries, and aws-auth has %d", len(live))}
	}
	if grantsNodes(live) && !grantsNodes(desired) {
		return &Wipe{WipeNodes, fmt.Sprintf("the render maps no identity to group %s, and aws-auth does: nodes could no longer join", NodesGroup)}
	}
	kept := make(map[string]bool, len(desired))
	for _, e := range desired {
		kept[e.key()] = true
	}
	removed := 0
	for _, e := range live {
		if !kept[e.key()] {
			removed++
		}
	}
	if len(live) >= MinEntriesForShareGuard && float64(removed) > maxRemovedShare*float64(len(live)) {
		return &Wipe{WipeTooManyRemoved, fmt.Sprintf("the render removes %d of the %d entries of aws-auth, more than the %.0f%% allowed at once", removed, len(live), maxRemovedShare*100)}
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
