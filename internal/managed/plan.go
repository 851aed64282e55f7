package managed

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// Observed is aws-auth as read from the API server, parsed and hashed once
// per read.
type Observed struct {
	// Object is nil when there is no aws-auth.
	Object *corev1.ConfigMap
	// Entries are what the authenticator serves from it; Rejected, what
	// Parse could not read as entries.
	Entries  []awsauth.Entry
	Rejected []awsauth.Rejected
	// Hash is awsauth.Hash of its data.
	Hash string
}

// Observe parses and hashes cm, which may be nil.
func Observe(cm *corev1.ConfigMap) Observed {
	if cm == nil {
		return Observed{}
	}
	entries, rejected := awsauth.Parse(cm.Data)
	return Observed{Object: cm, Entries: entries, Rejected: rejected, Hash: awsauth.Hash(cm.Data)}
}

// Terminating says whether the observed aws-auth is being deleted: held by
// a finalizer, the authenticator still serves it.
func (o Observed) Terminating() bool {
	return o.Object != nil && !o.Object.DeletionTimestamp.IsZero()
}

// Action is the one write a plan asks for.
type Action string

const (
	// ActionNone means aws-auth already is what it should be.
	ActionNone Action = "None"
	// ActionCreate means aws-auth is missing; create it.
	ActionCreate Action = "Create"
	// ActionUpdate means update aws-auth in place; its data is mutable, or only
	// its metadata differs.
	ActionUpdate Action = "Update"
	// ActionReplace means its immutable data must change: delete it (the
	// finalizer holds it, still served), then as ActionFinishReplace.
	ActionReplace Action = "Replace"
	// ActionFinishReplace means aws-auth is terminating (someone deleted it, or
	// a replace stopped halfway): release its finalizers and create the new
	// one at once.
	ActionFinishReplace Action = "FinishReplace"
	// ActionKeep means nothing may be written over aws-auth (a refusal, no CRD,
	// a render that failed); it is left as it is.
	ActionKeep Action = "Keep"
)

// Guards is what the refuse-to-lock-out rules measure a render against.
type Guards struct {
	// Applied is the record of what the operator last applied (or, without
	// one, what aws-auth holds).
	Applied []awsauth.Entry
	// MaxRemovedShare is the largest share of Applied one write may remove.
	MaxRemovedShare float64
	// Held is a refusal decided before the plan (an adoption that would
	// drop entries; no CRD to read mappings from), or nil.
	Held *awsauth.Refusal
}

// Plan is what to do to aws-auth, and why.
type Plan struct {
	Action Action
	// Write is the object to create or update: set for every action but
	// ActionNone and ActionKeep.
	Write *corev1.ConfigMap
	// Data is what Write holds.
	Data awsauth.Rendered
	// Drift names what someone else changed that the write undoes
	// (metadata, data, unmanaged), or "".
	Drift string
	// Refusal says why the render is not written; set with ActionKeep, or
	// with ActionFinishReplace when a terminating aws-auth comes back with
	// its own data.
	Refusal *awsauth.Refusal
	// RefusedHash is the hash of the render a guard refused: annotating
	// aws-auth with it allows that render.
	RefusedHash string
	// Allowed is a refusal overridden by the allow-render annotation: the
	// render is written all the same.
	Allowed *awsauth.Refusal
	// Applies says that, once written, aws-auth holds the render: the
	// record and the mappings' status may say so.
	Applies bool
}

// PlanWrite decides the one write that brings aws-auth from observed to
// rendered in mode, unless the guards refuse it. rendered is nil when
// nothing may be rendered (no CRD, a render that failed). An aws-auth that
// already holds the render is seen from the hash, before any guard runs:
// writing nothing can lock nobody out.
func PlanWrite(observed Observed, rendered *awsauth.Rendered, mode Mode, guards Guards) Plan {
	live := observed.Object
	if rendered == nil {
		return keep(observed, mode, guards.Held)
	}
	if live != nil && !observed.Terminating() && upToDate(observed, *rendered, mode) {
		return Plan{Action: ActionNone, Data: *rendered, Applies: true}
	}

	refusal := guards.Held
	if refusal == nil {
		refusal = awsauth.CheckRemovals(guards.Applied, rendered.Entries, guards.MaxRemovedShare)
	}
	var allowed *awsauth.Refusal
	if refusal != nil {
		if live == nil || live.Annotations[iamv1alpha1.AllowRenderAnnotation] != rendered.Hash {
			plan := keep(observed, mode, refusal)
			plan.RefusedHash = rendered.Hash
			return plan
		}
		allowed = refusal
	}

	plan := Plan{Data: *rendered, Allowed: allowed, Applies: true}
	switch {
	case live == nil:
		plan.Action, plan.Write = ActionCreate, newObject(nil, *rendered, mode)
		return plan
	case observed.Terminating():
		plan.Action, plan.Write = ActionFinishReplace, newObject(live, *rendered, mode)
		return plan
	}
	plan.Drift = driftCause(observed, *rendered)
	sameData := observed.Hash == rendered.Hash && len(live.BinaryData) == 0
	if !ptr.Deref(live.Immutable, false) || (sameData && mode == Immutable) {
		// The data may change in place, or only the metadata differs and
		// the data stays immutable.
		plan.Action, plan.Write = ActionUpdate, live.DeepCopy()
		Set(plan.Write, *rendered, mode)
		return plan
	}
	// Immutable data cannot change, nor become mutable, in place.
	plan.Action, plan.Write = ActionReplace, newObject(live, *rendered, mode)
	return plan
}

// keep leaves aws-auth as it is, and only makes sure it goes on existing:
// a deleted aws-auth of ours comes back with the data it was serving. One
// that is not ours to hold (it never had our finalizer) is left to go.
func keep(observed Observed, mode Mode, refusal *awsauth.Refusal) Plan {
	plan := Plan{Action: ActionKeep, Refusal: refusal}
	if live := observed.Object; observed.Terminating() && IsManaged(live) {
		plan.Data = awsauth.Rendered{Entries: observed.Entries, Data: live.Data, Hash: observed.Hash, Size: awsauth.DataSize(live.Data)}
		plan.Action, plan.Write = ActionFinishReplace, newObject(live, plan.Data, mode)
	}
	return plan
}

// upToDate says whether live holds rendered with all of the operator's
// marks; the data is compared by its hash.
func upToDate(observed Observed, rendered awsauth.Rendered, mode Mode) bool {
	live := observed.Object
	if observed.Hash != rendered.Hash || len(live.BinaryData) > 0 {
		return false
	}
	want := live.DeepCopy()
	Set(want, awsauth.Rendered{Data: live.Data, Hash: rendered.Hash}, mode)
	return equality.Semantic.DeepEqual(live, want)
}

// newObject is a new aws-auth holding rendered; the labels and annotations
// that others put on the previous object, if any, carry over.
func newObject(previous *corev1.ConfigMap, rendered awsauth.Rendered, mode Mode) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: AWSAuthKey.Namespace, Name: AWSAuthKey.Name}}
	if previous != nil {
		cm.Labels = maps.Clone(previous.Labels)
		cm.Annotations = maps.Clone(previous.Annotations)
	}
	Set(cm, rendered, mode)
	return cm
}

// Drift causes: what someone else changed on aws-auth.
const (
	DriftMetadata  = "metadata"
	DriftData      = "data"
	DriftUnmanaged = "unmanaged"
)

// driftCause says what someone else changed on a live aws-auth that differs
// from the render, or "" when the difference comes from the mappings.
func driftCause(observed Observed, rendered awsauth.Rendered) string {
	live := observed.Object
	sameData := observed.Hash == rendered.Hash && len(live.BinaryData) == 0
	// Any of our marks left says we wrote it once.
	ours := IsManaged(live) || live.Annotations[iamv1alpha1.DataHashAnnotation] != ""
	switch {
	case !ours && sameData:
		return "" // taking over an adopted aws-auth
	case !ours:
		return DriftUnmanaged
	case sameData:
		return DriftMetadata
	case observed.Hash != live.Annotations[iamv1alpha1.DataHashAnnotation] || len(live.BinaryData) > 0:
		return DriftData
	}
	return ""
}
