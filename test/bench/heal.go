package main

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Heal latency: aws-auth deleted with its finalizer removed first (the
// worst case: nothing holds it), timed from the DELETE request to the
// watcher's event for a new, complete aws-auth.
func (b *bench) measureHeal(ctx context.Context, rep *report, reps int, at string) error {
	hash := b.expectedHash()
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return err
	}
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return err
	}
	logFrom := b.op.logSize()
	r, err := b.healReps(ctx, hash, reps, nil)
	if err != nil {
		return err
	}
	heals, gaps, deletes, races := r.heals, r.gaps, r.deletes, r.races
	lost := b.op.lostUpdates(logFrom)
	name := "1. Heal: DELETE (finalizer bypassed) → complete aws-auth seen by a watcher"
	if at != "" {
		name += ", " + at
	}
	d := summarize(heals)
	rep.latency(secHeal, name, d)
	rep.latency(secHeal, "1. … of which DELETE sent → DELETED seen"+suffix(at), summarize(deletes))
	rep.latency(secHeal, "1. … of which DELETED seen → ADDED seen (no aws-auth)"+suffix(at), summarize(gaps))
	if at == "" {
		met := d.P99 < 50*time.Millisecond
		g, del := summarize(gaps), summarize(deletes)
		b.healGap, b.healAtRest = &g, &d
		why := fmt.Sprintf("Of the heal, DELETE sent → DELETED seen took p99 %s and DELETED seen → complete aws-auth seen p99 %s. ", ms(del.P99), ms(g.P99)) +
			"The second part is the operator's: its watch delivers the DELETED event, then one reconcile reads aws-auth from the API server (gone) and creates it again with the data it last applied, held in memory, before it reads any mapping: two round trips to a kube-apiserver and etcd that share 2 cores with the bench and with other jobs. " +
			fmt.Sprintf("In %d of %d repetitions the operator was still answering the finalizer removal that precedes the DELETE (it restores the finalizer with an update) when the DELETE landed: that update failed with not found (logged as a Reconciler error) and the heal came in the reconcile after it, about twice the round trips. The race exists because the bench deletes within a millisecond of removing the finalizer; done by hand, seconds apart, the finalizer is back by then and the delete is held (2c).", min(lost, reps), reps)
		rep.target("1. heal latency p99", "< 50 ms", fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(d.P99), ms(d.P50), ms(d.Max)), met, over(d.P99, 50*time.Millisecond)+why)
		rep.note(secHeal, "- Each repetition reads aws-auth, removes its finalizer with a merge patch fenced by resourceVersion, then sends DELETE with UID and resourceVersion preconditions, so the delete takes effect at once (the finalizer cannot come back in between). The clock starts just before the DELETE is sent and stops in the handler of a client-go watch on `kube-system/aws-auth` (field selector on the name, protobuf), at the ADDED event of a new UID whose data hash equals the render of the mappings the bench created. Every repetition starts from rest: aws-auth complete and the operator's worker idle (its `controller_runtime_active_workers` and `workqueue_depth` at 0).")
		rep.note(secHeal, "- %d repetitions at %d mappings. %d times the operator restored the finalizer before the DELETE arrived (precondition failed, 409); the bench then waited for the restored object and tried again; only successful bypasses are timed. %d times the operator's own update (restoring the finalizer) came too late and failed with not found, per its log.", reps, b.count(), races, lost)
	} else {
		met := d.P99 < 50*time.Millisecond
		g, del := summarize(gaps), summarize(deletes)
		slowest := ""
		if d.P99 == d.Max {
			slowest = fmt.Sprintf("With %d repetitions the p99 is the slowest one. ", d.N)
		}
		rep.target("1. heal latency p99, "+at+" (the same target at a larger scale)", "< 50 ms", fmt.Sprintf("p99 %s (p50 %s, max %s)", ms(d.P99), ms(d.P50), ms(d.Max)), met,
			over(d.P99, 50*time.Millisecond)+slowest+fmt.Sprintf("Of the heal, the API server's part (DELETE sent → DELETED seen) took p50 %s, max %s, and the operator's (DELETED seen → complete aws-auth seen) p50 %s, max %s. ", ms(del.P50), ms(del.Max), ms(g.P50), ms(g.Max))+
				"The heal reads no mapping before aws-auth is back (on the DELETED event it creates aws-auth from the data last applied, without reading it first; a reconcile already under way, such as the one for the finalizer removal, observes aws-auth again once it has rendered, and renders unchanged mappings from memory), so what grows with the number of mappings is the object itself: a ConfigMap of about "+sizeOfLast(b)+" that the operator encodes and sends, kube-apiserver decodes, validates and writes to etcd, and every watcher (the operator's, the bench's, the authenticator's) receives and decodes.")
		rep.note(secHeal, "- The same, %d repetitions %s (about %s of data), each from rest (the operator's worker idle). %d DELETEs lost the race against the finalizer restore and were sent again; %d times the operator's restore failed with not found.", reps, at, sizeOfLast(b), races, lost)
	}
	return nil
}

// healRuns are the samples of reps heals.
type healRuns struct {
	heals, gaps, deletes []time.Duration
	races                int
}

// healReps times reps heals, each from rest; before, when set, runs just
// before each DELETE (to note what else is going on then).
func (b *bench) healReps(ctx context.Context, hash string, reps int, before func()) (healRuns, error) {
	var r healRuns
	for i := range reps {
		if before != nil {
			before()
		}
		s, err := b.healOnce(ctx, hash, 10*time.Second)
		if err != nil {
			return r, fmt.Errorf("repetition %d: %w", i, err)
		}
		r.heals, r.gaps, r.deletes = append(r.heals, s.heal), append(r.gaps, s.gap), append(r.deletes, s.deleteSeen)
		r.races += s.races
		if err := b.waitSettled(ctx, hash, 10*time.Second); err != nil {
			return r, err
		}
		// Let the operator finish what follows a heal (backup, status,
		// a retry it had queued) so that every repetition starts from rest.
		time.Sleep(20 * time.Millisecond)
		if err := b.waitIdle(ctx, time.Minute); err != nil {
			return r, err
		}
	}
	return r, nil
}

func suffix(at string) string {
	if at == "" {
		return ""
	}
	return ", " + at
}

func sizeOfLast(b *bench) string {
	last, _ := b.w.last()
	return fmt.Sprintf("%d KiB", last.Size/1024)
}

// over says by how much got exceeds limit, as the start of an explanation.
func over(got, limit time.Duration) string {
	if got < limit {
		return ""
	}
	return fmt.Sprintf("Over by %s (%.1f×). ", ms(got-limit), float64(got)/float64(limit))
}

type healSample struct {
	heal, gap, deleteSeen time.Duration
	races                 int
}

func (b *bench) healOnce(ctx context.Context, hash string, timeout time.Duration) (healSample, error) {
	from := b.w.mark()
	sent, uid, races, err := b.deleteBypassingFinalizer(ctx, hash)
	if err != nil {
		return healSample{}, err
	}
	back, err := b.w.waitFor(ctx, from, timeout, func(s *awsAuthState) bool { return s.UID != uid && s.complete(hash) })
	if err != nil {
		return healSample{}, fmt.Errorf("aws-auth did not come back: %w", err)
	}
	s := healSample{heal: back.At.Sub(sent), races: races}
	for _, e := range b.w.since(from) {
		if e.Type == watch.Deleted && e.UID == uid {
			s.gap, s.deleteSeen = back.At.Sub(e.At), e.At.Sub(sent)
			break
		}
	}
	return s, nil
}

// deleteBypassingFinalizer removes the operator's finalizer from aws-auth
// and deletes it, fenced so that the delete lands on the object without the
// finalizer. It returns when the DELETE was sent, and how often the
// operator restored the finalizer first.
func (b *bench) deleteBypassingFinalizer(ctx context.Context, hash string) (time.Time, types.UID, int, error) {
	cms := b.cs.CoreV1().ConfigMaps(awsAuthNamespace)
	races := 0
	for range 20 {
		cur, err := cms.Get(ctx, awsAuthName, metav1.GetOptions{})
		if err != nil {
			return time.Time{}, "", races, err
		}
		patch := fmt.Sprintf(`{"metadata":{"finalizers":null,"resourceVersion":%q}}`, cur.ResourceVersion)
		patched, err := cms.Patch(ctx, awsAuthName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err == nil {
			uid, rv := patched.UID, patched.ResourceVersion
			sent := time.Now()
			err = cms.Delete(ctx, awsAuthName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
			if err == nil {
				return sent, uid, races, nil
			}
		}
		if !apierrors.IsConflict(err) {
			return time.Time{}, "", races, err
		}
		races++
		if err := b.waitSettled(ctx, hash, 10*time.Second); err != nil {
			return time.Time{}, "", races, err
		}
	}
	return time.Time{}, "", races, fmt.Errorf("the operator restored the finalizer before each of 20 deletes")
}
