package controllers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// scriptedWatcher answers each Watch with the next of its results.
type scriptedWatcher struct {
	client.WithWatch
	mu      sync.Mutex
	results []func() (watch.Interface, error)
	calls   int
	opts    []client.ListOptions
}

func (s *scriptedWatcher) Watch(_ context.Context, _ client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o client.ListOptions
	o.ApplyOptions(opts)
	s.opts = append(s.opts, o)
	s.calls++
	if s.calls > len(s.results) {
		return nil, errors.New("no more watches in the script")
	}
	return s.results[s.calls-1]()
}

func (s *scriptedWatcher) watches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestWatchAWSAuthStartsOverAndEnqueuesEachTime(t *testing.T) {
	first, second := watch.NewFake(), watch.NewFake()
	w := &scriptedWatcher{results: []func() (watch.Interface, error){
		func() (watch.Interface, error) { return first, nil },
		func() (watch.Interface, error) { return nil, refused(t) }, // the API server went away
		func() (watch.Interface, error) { return second, nil },
	}}
	var changes, deletions atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchAWSAuth(ctx, w, func(deleted bool) {
			if deleted {
				deletions.Add(1)
			}
			changes.Add(1)
		})
	}()

	g := NewWithT(t)
	g.Eventually(changes.Load).WithTimeout(5*time.Second).Should(BeEquivalentTo(1), "the first watch did not enqueue")
	first.Add(&corev1.ConfigMap{})
	first.Delete(&corev1.ConfigMap{})
	g.Eventually(changes.Load).WithTimeout(5*time.Second).Should(BeEquivalentTo(3), "an event did not enqueue")
	// Only the DELETED event says so: the reconcile then heals without
	// reading aws-auth first.
	g.Expect(deletions.Load()).To(BeEquivalentTo(1), "the deletion was not told apart")
	// 410 Gone: the watch starts over, through a failed attempt, and the
	// new watch enqueues again, since events may have been missed.
	first.Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
	g.Eventually(w.watches).WithTimeout(5*time.Second).Should(Equal(3), "the watch did not start over")
	g.Eventually(changes.Load).WithTimeout(5*time.Second).Should(BeEquivalentTo(4), "the new watch did not enqueue")
	second.Modify(&corev1.ConfigMap{})
	g.Eventually(changes.Load).WithTimeout(5*time.Second).Should(BeEquivalentTo(5), "an event of the new watch did not enqueue")
	g.Expect(deletions.Load()).To(BeEquivalentTo(1), "a start or a change was taken for a deletion")

	for i, o := range w.opts {
		if o.Namespace != managed.AWSAuthKey.Namespace || o.FieldSelector.String() != "metadata.name="+managed.AWSAuthKey.Name {
			t.Errorf("watch %d: namespace %q, field selector %q: not aws-auth alone", i+1, o.Namespace, o.FieldSelector)
		}
	}
	cancel()
	g.Eventually(done).WithTimeout(5*time.Second).Should(BeClosed(), "watchAWSAuth did not return when its context ended")
}
