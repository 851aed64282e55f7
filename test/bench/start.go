package main

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// Start to a complete aws-auth: the operator starts with the mappings in
// place but aws-auth missing and no backup to restore it from (a new
// cluster, or both deleted while the operator was down), so nothing serves
// until it has rendered the mappings. Timed from the start of the
// bin/manager process to the watcher's event for an aws-auth whose data
// hash equals the render of the mappings the bench created.
const (
	startTarget = 300 * time.Millisecond
	// Each repetition restarts the operator: a few seconds each.
	startReps = 10
)

type startSample struct {
	complete time.Duration // process started → complete aws-auth seen
	first    time.Duration // process started → first aws-auth event seen
	ready    time.Duration // process started → /readyz and /metrics answered
	before   int           // aws-auth events seen before the complete one
}

func (b *bench) measureStart(ctx context.Context, rep *report, reps int) error {
	hash := b.expectedHash()
	mode := b.op.mode
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return err
	}
	var complete, first, ready []time.Duration
	before := 0
	for i := range reps {
		s, err := b.startOnce(ctx, mode, hash)
		if err != nil {
			return fmt.Errorf("repetition %d: %w", i, err)
		}
		complete, first, ready = append(complete, s.complete), append(first, s.first), append(ready, s.ready)
		before += s.before
		// The next repetition stops this operator: let it finish what
		// follows the create (backup, status) first, as it would at rest.
		if err := b.waitSettled(ctx, hash, 30*time.Second); err != nil {
			return err
		}
		if err := b.waitIdle(ctx, time.Minute); err != nil {
			return err
		}
	}
	at := fmt.Sprintf("%s mappings, aws-auth missing at start, no backup", thousands(b.count()))
	d := summarize(complete)
	rep.latency(secStart, "6. Start: bin/manager process started → complete aws-auth seen by a watcher, "+at, d)
	rep.latency(secStart, "6. … process started → first aws-auth event seen", summarize(first))
	rep.latency(secStart, "6. … process started → /readyz and /metrics answer 200 (polled every 50 ms)", summarize(ready))
	why := ""
	if d.P99 >= startTarget {
		r := summarize(ready)
		why = over(d.P99, startTarget) + fmt.Sprintf("Nothing serves in this time: aws-auth is missing and there is no backup to restore first, so aws-auth appears only once the operator has started, read the mappings and rendered them. "+
			"Its health and metrics endpoints answered p50 %s, max %s after the start (to within the 50 ms of the bench's polling). ", ms(r.P50), ms(r.Max))
		if before > 0 {
			why += fmt.Sprintf("The watcher saw %d aws-auth events before the complete ones, over all %d repetitions. ", before, reps)
		}
	}
	rep.target(fmt.Sprintf("6. start to complete aws-auth, %s mappings, missing at start, no backup", thousands(b.count())), "< 300 ms", fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(d.P99), ms(d.P50), ms(d.Max)), d.P99 < startTarget, why)
	rep.note(secStart, "- %d repetitions at %d mappings, %s mode. Each stops the operator (SIGTERM, waiting for it to exit), removes the finalizers of aws-auth and of `%s/%s` and deletes both, waits until the watcher has seen aws-auth go and both are not found, then starts bin/manager. "+
		"The clock starts when the process has been started (fork and exec returned) and stops in the handler of the bench's watch on `kube-system/aws-auth` at the first event whose data hash equals the render of the mappings. "+
		"Every repetition ends at rest (aws-auth complete, with its finalizer, and the operator's worker idle) before the next one stops the operator. "+
		"The watcher saw %d aws-auth events before the complete one, over all repetitions.",
		reps, b.count(), mode, operatorNamespace, managed.BackupName, before)
	return nil
}

func (b *bench) startOnce(ctx context.Context, mode, hash string) (startSample, error) {
	if err := b.op.stop(); err != nil {
		return startSample{}, err
	}
	from := b.w.mark()
	if err := b.deleteUnheld(ctx, awsAuthNamespace, awsAuthName); err != nil {
		return startSample{}, err
	}
	if err := b.deleteUnheld(ctx, operatorNamespace, managed.BackupName); err != nil {
		return startSample{}, err
	}
	// The event timed below must come after the watcher saw aws-auth go.
	if _, err := b.w.waitFor(ctx, from, 10*time.Second, func(s *awsAuthState) bool { return s.Type == watch.Deleted }); err != nil {
		return startSample{}, fmt.Errorf("the watcher did not see aws-auth deleted: %w", err)
	}
	from = b.w.mark()
	if err := b.startOperator(ctx, mode); err != nil {
		return startSample{}, err
	}
	started := b.op.startedFrom
	s := startSample{ready: time.Since(started)}
	done, err := b.w.waitFor(ctx, from, 30*time.Second, func(e *awsAuthState) bool { return e.complete(hash) })
	if err != nil {
		return startSample{}, fmt.Errorf("no complete aws-auth after the start: %w", err)
	}
	s.complete = done.At.Sub(started)
	events := b.w.since(from)
	s.first = events[0].At.Sub(started)
	for _, e := range events {
		if e.complete(hash) {
			break
		}
		s.before++
	}
	return s, nil
}

// deleteUnheld removes a ConfigMap's finalizers, deletes it and waits
// until it is gone. Only while no operator runs: one would put its
// finalizer back, or heal the object.
func (b *bench) deleteUnheld(ctx context.Context, namespace, name string) error {
	cms := b.cs.CoreV1().ConfigMaps(namespace)
	_, err := cms.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizers of %s/%s: %w", namespace, name, err)
	}
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s/%s: %w", namespace, name, err)
	}
	err = pollUntil(ctx, 10*time.Second, func() bool {
		_, err := cms.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("%s/%s still there: %w", namespace, name, err)
	}
	return nil
}
