package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// desired is what the render step made of the mappings.
type desired struct {
	// mappings are the mappings as listed; nil when none could be read.
	mappings []iamv1alpha1.IAMIdentityMapping
	// resolution is the outcome of each mapping not being deleted.
	resolution awsauth.Resolution
	// rendered is what aws-auth should hold; nil when nothing may be
	// written (no CRD, an adoption under way, a render that failed).
	rendered *awsauth.Rendered
	// renderErr says why the mappings do not render together.
	renderErr error
	// listed is the version of each mapping the render was made of.
	listed   map[string]listedMapping
	guards   managed.Guards
	adoption adoption
}

// render reads the mappings from the cache and renders them once. It
// returns an error only when they could not be read; a render that fails
// is kept in desired, for the mappings' status. Entries too large to fit
// hold back only themselves: the others, revocations included, are still
// written, and what is applied keeps its place.
func (r *AWSAuthReconciler) render(ctx context.Context, observed managed.Observed) (desired, error) {
	var d desired
	// From the cache: the CRD is watched, so a change to it brings us back;
	// a round trip here would only delay healing aws-auth.
	why, err := crdUnusable(ctx, r.Client)
	switch {
	case err != nil:
		return d, err
	case why != "":
		d.guards.Held = &awsauth.Refusal{Reason: awsauth.RefusedCRDUnusable, Message: why}
		return d, nil
	}
	if err := r.watchMappings(); err != nil {
		return d, err
	}
	mappings, err := r.listMappings(ctx)
	if err != nil {
		return d, err
	}
	if d.adoption, err = r.adopt(ctx, observed, mappings); err != nil || d.adoption.pending {
		return d, err
	}
	applied, appliedHash, err := r.appliedEntries(ctx, observed)
	if err != nil {
		return d, err
	}
	d.mappings = mappings
	d.guards = managed.Guards{Applied: applied, MaxRemovedShare: r.MaxRemovedShare, Held: d.adoption.held}
	memo := renderMemo{listed: listedOf(mappings), appliedHash: appliedHash}
	if last := r.lastRender; last != nil && last.appliedHash == memo.appliedHash && maps.Equal(last.listed, memo.listed) {
		// The same mappings over the same record render the same: at
		// thousands of mappings this saves a tenth of a second, on every
		// reconcile that a change of aws-auth alone brings.
		memo = *last
	} else {
		var rendered awsauth.Rendered
		memo.resolution, rendered, memo.renderErr = awsauth.RenderFitted(awsauth.Resolve(renderInputs(mappings)), applied)
		if memo.renderErr == nil {
			memo.rendered = &rendered
		}
		r.lastRender = &memo
	}
	d.listed, d.resolution, d.rendered, d.renderErr = memo.listed, memo.resolution, memo.rendered, memo.renderErr
	return d, nil
}

// renderMemo is the last render and what it was made of.
type renderMemo struct {
	listed      map[string]listedMapping
	appliedHash string
	resolution  awsauth.Resolution
	rendered    *awsauth.Rendered
	renderErr   error
}

// listedOf names the version of each mapping: what a render depends on
// (a mapping's spec changes its generation; its creation time and UID
// change only with the object).
func listedOf(mappings []iamv1alpha1.IAMIdentityMapping) map[string]listedMapping {
	listed := make(map[string]listedMapping, len(mappings))
	for i := range mappings {
		m := &mappings[i]
		listed[m.Name] = listedMapping{uid: m.UID, generation: m.Generation, deleting: !m.DeletionTimestamp.IsZero()}
	}
	return listed
}

// listMappings reads mappings from the cache, bounded in time: a cache
// that cannot sync (the CRD went away meanwhile) must not stall the one
// worker that keeps aws-auth alive.
func (r *AWSAuthReconciler) listMappings(ctx context.Context) ([]iamv1alpha1.IAMIdentityMapping, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var list iamv1alpha1.IAMIdentityMappingList
	// Read only, never changed: the cache's own objects, not copies of
	// thousands of them on every reconcile.
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing IAMIdentityMappings: %w", err)
	}
	return list.Items, nil
}

// renderInputs are the mappings to render: those being deleted are not,
// so their entries leave aws-auth.
func renderInputs(items []iamv1alpha1.IAMIdentityMapping) []awsauth.Mapping {
	inputs := make([]awsauth.Mapping, 0, len(items))
	for i := range items {
		if items[i].DeletionTimestamp.IsZero() {
			inputs = append(inputs, managed.MappingInput(&items[i]))
		}
	}
	return inputs
}

// appliedEntries is what a render is measured against: the operator's
// record of what it last applied, not whatever aws-auth holds. Entries
// someone else added are drift, undone at once; they must neither hold a
// render back (forged entries plus filler would otherwise stay live under
// TooManyRemoved) nor take the place of applied entries when the render
// is too large. Without a record (adoption, a forged backup) it is the
// live aws-auth.
// The hash names the baseline, for the render memo.
func (r *AWSAuthReconciler) appliedEntries(ctx context.Context, observed managed.Observed) ([]awsauth.Entry, string, error) {
	record, _, err := r.record(ctx)
	if err != nil || record == nil {
		return observed.Entries, "live:" + observed.Hash, err
	}
	return record.Entries, record.Hash, nil
}
