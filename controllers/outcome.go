package controllers

import (
	"context"
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// outcome is what one reconcile of aws-auth made of the mappings: what
// their status is written from.
type outcome struct {
	resolution awsauth.Resolution
	// served are the entries aws-auth holds now, by section and identity
	// as written.
	served map[servedKey]awsauth.Entry
	// renderErr says why the mappings did not render together.
	renderErr error
	// refusal says why the render was not written, with how to allow it.
	refusal *awsauth.Refusal
	// applied: aws-auth holds the render, so deleted mappings may go.
	applied bool
	// listed are the mappings the render was made of, by name.
	listed map[string]listedMapping
	// key tells whether two outcomes would give any mapping another status.
	key outcomeKey
}

type servedKey struct {
	section  awsauth.Section
	identity string
}

// listedMapping is the version of a mapping a render was made of.
type listedMapping struct {
	uid        types.UID
	generation int64
	deleting   bool
}

// outcomeKey is all of an outcome that a status depends on, beside the
// listed mappings: the render, what aws-auth holds and why not the render.
type outcomeKey struct {
	renderedHash, servedHash, renderErr, refusal string
	applied                                      bool
}

// newOutcome is the outcome of a reconcile that rendered d, planned plan
// and left aws-auth serving servedEntries (of hash servedHash); applied
// says aws-auth holds the render.
func newOutcome(d *desired, plan managed.Plan, servedEntries []awsauth.Entry, servedHash string, applied bool) *outcome {
	o := &outcome{
		resolution: d.resolution,
		served:     make(map[servedKey]awsauth.Entry, len(servedEntries)),
		renderErr:  d.renderErr,
		applied:    applied,
		listed:     d.listed,
	}
	for _, e := range servedEntries {
		o.served[servedKey{e.Section, e.Identity}] = e
	}
	if plan.Refusal != nil {
		refusal := *plan.Refusal
		if plan.RefusedHash != "" {
			refusal.Message += " (to allow it, annotate aws-auth with " + iamv1alpha1.AllowRenderAnnotation + "=" + plan.RefusedHash + ")"
		}
		o.refusal = &refusal
	}
	o.key = outcomeKey{servedHash: servedHash, applied: applied}
	if d.rendered != nil {
		o.key.renderedHash = d.rendered.Hash
	}
	if o.renderErr != nil {
		o.key.renderErr = o.renderErr.Error()
	}
	if o.refusal != nil {
		o.key.refusal = o.refusal.Message
	}
	return o
}

// serves says whether aws-auth holds e exactly.
func (o *outcome) serves(e awsauth.Entry) bool {
	served, ok := o.served[servedKey{e.Section, e.Identity}]
	return ok && served.Equal(e)
}

// current says whether the outcome was made of m as it is now.
func (o *outcome) current(m *iamv1alpha1.IAMIdentityMapping) bool {
	l, ok := o.listed[m.Name]
	return ok && l.uid == m.UID && l.generation == m.Generation
}

// sameAs says whether o would give every mapping the status prev gave it.
func (o *outcome) sameAs(prev *outcome) bool {
	return prev != nil && o.key == prev.key && maps.Equal(o.listed, prev.listed)
}

// outcomes hands the last outcome from the aws-auth reconciler to the
// status reconciler, and queues the mappings whose status it may change.
type outcomes struct {
	mu    sync.Mutex
	last  *outcome
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// source gives the status reconciler's queue to publish.
func (p *outcomes) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.queue = q
		if p.last != nil {
			p.enqueue(p.last)
		}
		return nil
	})
}

// publish makes o the outcome statuses are written from. Only a change
// queues work: an outcome equal to the last one changes no status.
func (p *outcomes) publish(o *outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.sameAs(p.last) {
		return
	}
	p.last = o
	if p.queue != nil {
		p.enqueue(o)
	}
}

func (p *outcomes) enqueue(o *outcome) {
	for name := range o.listed {
		p.queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
}

func (p *outcomes) load() *outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}
