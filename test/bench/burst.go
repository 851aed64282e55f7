package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
)

// Bursts: 1,000 mappings created at once (a GitOps sync), then 500 of them
// deleted at once. Counted: replaces (the operator's own counter, scraped
// before and after, and the new aws-auth UIDs the watcher saw), the time
// aws-auth was absent and the authenticator did not map the looked-up
// role, and whether the final data is exactly the render.
const burstWorkers = 16

type burstResult struct {
	label                      string
	mappingsBefore             int
	replaces                   float64
	uids                       int
	sending, converge          time.Duration // first write → last answer; last answer → aws-auth holds all
	probe                      probeResult
	absentTotal, absentLongest time.Duration
	exact                      bool
	mismatch                   string
	stuck                      int
	released                   time.Duration
}

func (b *bench) measureBurst(ctx context.Context, rep *report) error {
	if err := b.waitSettled(ctx, b.expectedHash(), time.Minute); err != nil {
		return err
	}
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return err
	}
	objs := make([]*iamv1alpha1.IAMIdentityMapping, 1000)
	for i := range objs {
		objs[i] = typical(fmt.Sprintf("burst-%04d", i))
	}
	created, err := b.burst(ctx, "create 1,000", func() (time.Time, time.Time, error) { return b.createAll(ctx, objs, burstWorkers) })
	if err != nil {
		return err
	}
	b.reportBurst(rep, created)

	names := make([]string, 0, 500)
	for i := 0; i < len(objs); i += 2 {
		names = append(names, objs[i].Name)
	}
	deleted, err := b.burst(ctx, "delete 500", func() (time.Time, time.Time, error) { return b.deleteAll(ctx, names, burstWorkers) })
	if err != nil {
		return err
	}
	// A deletion a guard holds shows as a mapping stuck Terminating.
	start := time.Now()
	_ = pollUntil(ctx, 2*time.Minute, func() bool {
		deleted.stuck = b.remaining(ctx, names)
		return deleted.stuck == 0
	})
	deleted.released = time.Since(start)
	b.reportBurst(rep, deleted)
	return nil
}

func (b *bench) burst(ctx context.Context, label string, act func() (time.Time, time.Time, error)) (burstResult, error) {
	r := burstResult{label: label, mappingsBefore: b.count()}
	before, err := b.replaces()
	if err != nil {
		return r, err
	}
	from := b.w.mark()
	p := b.startProbe(6 * time.Minute)
	first, last, err := act()
	if err != nil {
		p.stop()
		return r, err
	}
	r.sending = last.Sub(first)
	entries, hash, err := b.expected()
	if err != nil {
		p.stop()
		return r, err
	}
	done, err := b.w.waitFor(ctx, from, 5*time.Minute, func(s *awsAuthState) bool { return s.complete(hash) })
	if err != nil {
		p.stop()
		return r, err
	}
	r.converge = done.At.Sub(last)
	// Any write still in flight shows up in this time.
	time.Sleep(2 * time.Second)
	r.probe = p.stop()
	after, err := b.replaces()
	if err != nil {
		return r, err
	}
	r.replaces = after - before
	events := b.w.since(from)
	seen := map[string]bool{}
	for _, e := range events {
		if e.Type == watch.Added {
			seen[string(e.UID)] = true
		}
	}
	r.uids = len(seen)
	r.absentTotal, r.absentLongest = absentTime(events)
	r.exact, r.mismatch = b.compareLive(ctx, entries)
	return r, nil
}

// compareLive parses the live aws-auth as the operator does and compares
// it with the expected entries.
func (b *bench) compareLive(ctx context.Context, want []awsauth.Entry) (bool, string) {
	cm, err := b.cs.CoreV1().ConfigMaps(awsAuthNamespace).Get(ctx, awsAuthName, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	got, errs := awsauth.Parse(cm.Data)
	if len(errs) > 0 {
		return false, fmt.Sprintf("aws-auth does not parse: %v", errs[0])
	}
	if slices.EqualFunc(got, want, awsauth.Entry.Equal) {
		return true, ""
	}
	for i := range min(len(got), len(want)) {
		if !got[i].Equal(want[i]) {
			return false, fmt.Sprintf("%d entries, want %d; first difference at %d: %s, want %s", len(got), len(want), i, got[i].Identity, want[i].Identity)
		}
	}
	return false, fmt.Sprintf("%d entries, want %d", len(got), len(want))
}

// remaining counts the named mappings that still exist.
func (b *bench) remaining(ctx context.Context, names []string) int {
	var list iamv1alpha1.IAMIdentityMappingList
	if err := b.k.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return len(names)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	n := 0
	for _, m := range list.Items {
		if want[m.Name] {
			n++
		}
	}
	return n
}

func (b *bench) reportBurst(rep *report, r burstResult) {
	name := "3. burst: " + r.label
	rep.figure(secBurst, name+": replaces of aws-auth", fmt.Sprintf("%.0f (aws_auth_guardian_replaces_total); %d new aws-auth objects seen by the watcher", r.replaces, r.uids))
	rep.figure(secBurst, name+": time to send / to converge", fmt.Sprintf("%s to send with %d workers; %s from the last answer to aws-auth holding the result", ms(r.sending), burstWorkers, ms(r.converge)))
	rep.figure(secBurst, name+": outage", fmt.Sprintf("looked-up role not mapped %s in all (longest %s, %d stretches); aws-auth absent %s in all as the watcher saw it (longest %s)",
		ms(r.probe.total()), ms(r.probe.longest()), len(r.probe.Outages), ms(r.absentTotal), ms(r.absentLongest)))
	exact := "exact: the parsed live aws-auth equals the render of all mappings"
	if !r.exact {
		exact = "NOT exact: " + r.mismatch
	}
	rep.figure(secBurst, name+": final data", exact)
	if r.label == "delete 500" {
		stuck := fmt.Sprintf("none stuck Terminating: all 500 gone %s after aws-auth converged", ms(r.released))
		if r.stuck > 0 {
			stuck = fmt.Sprintf("%d of 500 still Terminating after 2 minutes: a guard held their deletion", r.stuck)
		}
		rep.figure(secBurst, name+": deleted mappings", stuck)
	}
	rep.note(secBurst, "- **%s** (%d mappings before): %d workers sent the writes in %s; aws-auth held the result %s after the last answer. %.0f replaces; the authenticator did not map the looked-up role for %s in all, in %d stretches (probe resolution: longest pause %s).",
		r.label, r.mappingsBefore, burstWorkers, ms(r.sending), ms(r.converge), r.replaces, ms(r.probe.total()), len(r.probe.Outages), ms(r.probe.MaxGap))
	if r.label == "delete 500" {
		rep.note(secBurst, "  Deleting 500 of %d entries removes %.1f%% of them at most, under the 50%% that --max-removed-share allows in one write; even a single write of all 500 would pass.", r.mappingsBefore, 50000/float64(r.mappingsBefore))
	}
	met := r.replaces <= 5 && r.exact
	why := ""
	if r.replaces > 5 {
		why = fmt.Sprintf("Over by %.0f. The operator gathers mapping events for --batch-delay (200 ms) from the first one, then writes; a burst that takes %s to send spans up to about %.0f such windows, and each window is a replace (plus the reconciles while the previous one runs). ",
			r.replaces-5, ms(r.sending), (r.sending+r.converge).Seconds()/0.2)
	}
	if !r.exact {
		why += "The final data was not the render: " + r.mismatch + ". "
	}
	rep.target("3. "+r.label+": replaces, final data", "≤ 5 replaces, exact", fmt.Sprintf("%.0f replaces, %s", r.replaces, strings.SplitN(exact, ":", 2)[0]), met, why)
}
