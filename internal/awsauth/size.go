package awsauth

import (
	"errors"
	"maps"
	"slices"
)

// Overflow says why an entry was left out for size, in bytes of aws-auth
// data as the API server counts them.
type Overflow struct {
	// EntryBytes is what the entry adds to the render.
	EntryBytes int
	// FreeBytes is what the kept entries leave of MaxDataBytes: an entry
	// at most this large would fit.
	FreeBytes int
}

// RenderFitted renders a resolution, leaving out what does not fit (see
// Fit). Fit runs only when the whole render is over the limit: measuring
// entry by entry costs about half as much again as the render itself, on
// every reconcile.
func RenderFitted(res Resolution, applied []Entry) (Resolution, Rendered, error) {
	rendered, err := Render(res.Entries)
	if !errors.Is(err, ErrTooLarge) {
		return res, rendered, err
	}
	res = Fit(res, applied)
	rendered, err = Render(res.Entries)
	return res, rendered, err
}

// Fit keeps the entries of a resolution that fit together within
// MaxDataBytes and marks the others TooLarge, so that mappings too large
// to render together hold back only themselves, not every other change
// (a revocation above all). applied is what the operator last wrote,
// parsed (nil when unknown).
//
// Entries already applied unchanged come first, so a new or changed
// mapping never pushes a live one out; then the others. Within each, the
// oldest mapping (then the first by name) comes first. The fit is greedy:
// an entry that does not fit is skipped, and a later, smaller one may
// still fit.
func Fit(res Resolution, applied []Entry) Resolution {
	// Keyed as the authenticator tells entries apart; of duplicates it
	// serves the last, and so does this map.
	live := make(map[string]Entry, len(applied))
	for _, e := range applied {
		live[e.Key()] = e
	}
	unchanged := func(name string) bool {
		e := res.Outcomes[name].Entry
		a, ok := live[e.Key()]
		return ok && a.Equal(e)
	}
	order := slices.Concat(
		slices.DeleteFunc(slices.Clone(res.byAge), func(n string) bool { return !unchanged(n) }),
		slices.DeleteFunc(slices.Clone(res.byAge), unchanged),
	)

	fitted := Resolution{Outcomes: maps.Clone(res.Outcomes)}
	left := map[string]int{} // name: entry bytes
	used := 0
	started := map[Section]bool{}
	for _, name := range order {
		e := res.Outcomes[name].Entry
		size, err := entryBytes(e)
		if err != nil {
			// Not left out: Render refuses the entry and says why.
			size = 0
		}
		key := 0
		if !started[e.Section] {
			key = len(e.Section)
		}
		if used+key+size > MaxDataBytes {
			left[name] = size
			continue
		}
		used += key + size
		started[e.Section] = true
		fitted.Entries = append(fitted.Entries, e)
	}
	for name, size := range left {
		out := fitted.Outcomes[name]
		out.TooLarge = &Overflow{EntryBytes: size, FreeBytes: MaxDataBytes - used}
		fitted.Outcomes[name] = out
	}
	// Still oldest first, so that a fitted resolution fits again unchanged.
	fitted.byAge = slices.DeleteFunc(slices.Clone(res.byAge), func(n string) bool { _, out := left[n]; return out })
	slices.SortFunc(fitted.Entries, compareEntries)
	return fitted
}

// entryBytes is what an entry adds to its section's value in the render:
// each item of a YAML list is written on its own lines, the same whatever
// comes before or after it.
func entryBytes(e Entry) (int, error) {
	it, err := item(e)
	if err != nil {
		return 0, err
	}
	out, err := encode([]any{it})
	return len(out), err
}
