package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// awsAuthState is one watch event on aws-auth.
type awsAuthState struct {
	At          time.Time
	Type        watch.EventType
	UID         types.UID
	RV          string
	Terminating bool
	Immutable   bool
	Finalized   bool // carries the operator's finalizer
	Hash        string
	Size        int
	// Data is kept for the latest events only, to bound memory at scale.
	Data map[string]string
}

// complete says whether the event shows a serving aws-auth whose data has
// the given hash.
func (s *awsAuthState) complete(hash string) bool {
	return s.Type != watch.Deleted && !s.Terminating && s.Hash == hash
}

type watcher struct {
	cs      kubernetes.Interface
	mu      sync.Mutex
	events  []awsAuthState
	changed chan struct{}
}

const keepData = 64

var awsAuthSelector = fields.OneTermEqualSelector("metadata.name", awsAuthName).String()

func startWatcher(ctx context.Context, cs kubernetes.Interface) (*watcher, error) {
	w := &watcher{cs: cs, changed: make(chan struct{})}
	rv, err := w.list(ctx)
	if err != nil {
		return nil, err
	}
	go w.run(ctx, rv)
	return w, nil
}

func (w *watcher) list(ctx context.Context) (string, error) {
	list, err := w.cs.CoreV1().ConfigMaps(awsAuthNamespace).List(ctx, metav1.ListOptions{FieldSelector: awsAuthSelector})
	if err != nil {
		return "", err
	}
	for i := range list.Items {
		w.record(time.Now(), watch.Added, &list.Items[i])
	}
	return list.ResourceVersion, nil
}

// run watches from rv, and resumes from the last seen resourceVersion when
// the API server closes the watch (bounded in attempts and by ctx).
func (w *watcher) run(ctx context.Context, rv string) {
	for attempt := 0; attempt < 10000 && ctx.Err() == nil; attempt++ {
		wi, err := w.cs.CoreV1().ConfigMaps(awsAuthNamespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: awsAuthSelector, ResourceVersion: rv, AllowWatchBookmarks: true,
		})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			at := time.Now()
			switch ev.Type {
			case watch.Error:
				// Most likely 410 Gone: list again and go on from there.
				if newRV, err := w.list(ctx); err == nil {
					rv = newRV
				}
				wi.Stop()
			case watch.Bookmark:
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
					rv = cm.ResourceVersion
				}
			default:
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
					rv = cm.ResourceVersion
					w.record(at, ev.Type, cm)
				}
			}
		}
		wi.Stop()
	}
}

func (w *watcher) record(at time.Time, typ watch.EventType, cm *corev1.ConfigMap) {
	s := awsAuthState{
		At:          at,
		Type:        typ,
		UID:         cm.UID,
		RV:          cm.ResourceVersion,
		Terminating: cm.DeletionTimestamp != nil,
		Immutable:   cm.Immutable != nil && *cm.Immutable,
		Finalized:   slices.Contains(cm.Finalizers, iamv1alpha1.ProtectionFinalizer),
		Hash:        awsauth.Hash(cm.Data),
		Size:        awsauth.DataSize(cm.Data),
		Data:        cm.Data,
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, s)
	if n := len(w.events); n > keepData {
		w.events[n-keepData-1].Data = nil
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// mark is the index of the next event.
func (w *watcher) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// since returns a copy of the events from index from on.
func (w *watcher) since(from int) []awsAuthState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if from > len(w.events) {
		return nil
	}
	return slices.Clone(w.events[from:])
}

// last is the latest event, if any.
func (w *watcher) last() (awsAuthState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return awsAuthState{}, false
	}
	return w.events[len(w.events)-1], true
}

// waitFor returns the first event at index from or later that ok accepts,
// waiting at most timeout.
func (w *watcher) waitFor(ctx context.Context, from int, timeout time.Duration, ok func(*awsAuthState) bool) (awsAuthState, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		for i := from; i < len(w.events); i++ {
			if ok(&w.events[i]) {
				e := w.events[i]
				w.mu.Unlock()
				return e, nil
			}
		}
		from = len(w.events)
		ch := w.changed
		w.mu.Unlock()
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return awsAuthState{}, fmt.Errorf("timed out after %s waiting for aws-auth", timeout)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return awsAuthState{}, ctx.Err()
		case <-time.After(remaining):
		}
	}
}

// waitSettled waits until the latest event shows a serving aws-auth with
// hash, carrying the finalizer, in the operator's mode: the state every
// measurement starts from.
func (b *bench) waitSettled(ctx context.Context, hash string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		from := b.w.mark()
		if last, ok := b.w.last(); ok && last.complete(hash) && last.Finalized && last.Immutable == (b.op.mode == "immutable") {
			return nil
		}
		_, _ = b.w.waitFor(ctx, from, time.Until(deadline), func(*awsAuthState) bool { return true })
	}
	last, _ := b.w.last()
	return fmt.Errorf("aws-auth did not settle on the expected render within %s (last event %s, terminating %v, immutable %v, hash %.12s, want %.12s)",
		timeout, last.Type, last.Terminating, last.Immutable, last.Hash, hash)
}

// countDeleted counts DELETED events among events.
func countDeleted(events []awsAuthState) int {
	n := 0
	for _, e := range events {
		if e.Type == watch.Deleted {
			n++
		}
	}
	return n
}

// absentTime adds up the time between each DELETED and the next ADDED, as
// the watcher saw them, and returns the longest gap too.
func absentTime(events []awsAuthState) (total, longest time.Duration) {
	var since time.Time
	for _, e := range events {
		switch {
		case e.Type == watch.Deleted:
			since = e.At
		case e.Type == watch.Added && !since.IsZero():
			gap := e.At.Sub(since)
			total += gap
			longest = max(longest, gap)
			since = time.Time{}
		}
	}
	return total, longest
}

// pollUntil checks cond every millisecond until it holds or timeout.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for ctx.Err() == nil {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}
