package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientretry "k8s.io/client-go/util/retry"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
)

// The outage as the authenticator sees it: its ConfigMap mapper watches
// aws-auth, and the probe asks it about one mapped role in a tight loop
// while an event happens. Each event is one of:
//
//	change     a mapping other than the looked-up one is created or updated
//	bypass     aws-auth deleted with its finalizer removed first
//	finalizer  a plain delete of aws-auth, which the finalizer holds
const settle = 30 * time.Millisecond

type outageSample struct {
	probeResult
	deletes     int           // DELETED events the watcher saw
	absent      time.Duration // DELETED → ADDED, as the watcher saw them
	propagation time.Duration // event sent → the authenticator serves its result
}

var outageTitles = map[string]string{
	"change":    "2a. mappings change one at a time",
	"bypass":    "2b. aws-auth deleted, finalizer bypassed",
	"finalizer": "2c. plain delete of aws-auth (held by the finalizer)",
}

func (b *bench) measureOutage(ctx context.Context, rep *report, kind string, reps int) error {
	if err := b.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return err
	}
	samples := make([]outageSample, 0, reps)
	logFrom := b.op.logSize()
	for i := range reps {
		s, err := b.outageOnce(ctx, kind, i)
		if err != nil {
			return fmt.Errorf("%s, event %d: %w", kind, i, err)
		}
		samples = append(samples, s)
	}
	b.reportOutage(rep, kind, b.op.mode, samples, b.op.lostUpdates(logFrom))
	return nil
}

// measureMutable runs the change events with the operator restarted in
// --configmap-mode=mutable, then goes back to immutable.
func (b *bench) measureMutable(ctx context.Context, rep *report, reps int) error {
	if err := b.startOperator(ctx, "mutable"); err != nil {
		return err
	}
	hash := b.expectedHash()
	if err := b.waitSettled(ctx, hash, time.Minute); err != nil {
		return fmt.Errorf("converting aws-auth to mutable: %w", err)
	}
	if err := b.measureOutage(ctx, rep, "change", reps); err != nil {
		return err
	}
	if err := b.startOperator(ctx, "immutable"); err != nil {
		return err
	}
	err := b.waitSettled(ctx, b.expectedHash(), time.Minute)
	return err
}

func (b *bench) outageOnce(ctx context.Context, kind string, i int) (outageSample, error) {
	hash := b.expectedHash()
	if err := b.waitSettled(ctx, hash, 30*time.Second); err != nil {
		return outageSample{}, err
	}
	if err := b.waitIdle(ctx, time.Minute); err != nil {
		return outageSample{}, err
	}
	from := b.w.mark()
	p := b.startProbe(30 * time.Second)
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	start := time.Now()
	var arrived func(*awsAuthState) bool
	served := func() bool { return true }
	switch kind {
	case "change":
		arn, username, err := b.churn(ctx, i)
		if err != nil {
			return outageSample{}, err
		}
		newHash := b.expectedHash()
		arrived = func(s *awsAuthState) bool { return s.complete(newHash) }
		served = func() bool {
			m, err := b.auth.RoleMapping(strings.ToLower(arn))
			return err == nil && m.Username == username
		}
	case "bypass":
		sent, uid, _, err := b.deleteBypassingFinalizer(ctx, hash)
		if err != nil {
			return outageSample{}, err
		}
		start = sent
		arrived = func(s *awsAuthState) bool { return s.UID != uid && s.complete(hash) }
	case "finalizer":
		old, _ := b.w.last()
		if err := b.cs.CoreV1().ConfigMaps(awsAuthNamespace).Delete(ctx, awsAuthName, metav1.DeleteOptions{}); err != nil {
			return outageSample{}, err
		}
		arrived = func(s *awsAuthState) bool { return s.UID != old.UID && s.complete(hash) }
	default:
		return outageSample{}, fmt.Errorf("unknown event %q", kind)
	}
	if _, err := b.w.waitFor(ctx, from, 20*time.Second, arrived); err != nil {
		return outageSample{}, err
	}
	if err := pollUntil(ctx, 10*time.Second, func() bool { return !p.down.Load() && served() }); err != nil {
		return outageSample{}, fmt.Errorf("the authenticator did not serve the new aws-auth: %w", err)
	}
	s := outageSample{propagation: time.Since(start)}
	// Transitions right after still belong to this event.
	time.Sleep(settle)
	s.probeResult = p.stop()
	stopped = true
	events := b.w.since(from)
	s.deletes = countDeleted(events)
	s.absent, _ = absentTime(events)
	return s, nil
}

// churn creates a mapping (even i) or changes the username of the one
// created before (odd i), and returns its role ARN and new username.
func (b *bench) churn(ctx context.Context, i int) (string, string, error) {
	name := b.churnName(i, b.eks != nil)
	if i%2 == 0 {
		m := typical(name)
		if _, _, err := b.createAll(ctx, []*iamv1alpha1.IAMIdentityMapping{m}, 1); err != nil {
			return "", "", err
		}
		return m.Spec.ARN, string(m.Spec.Username), nil
	}
	username := name + ":v2:{{SessionName}}"
	m := &iamv1alpha1.IAMIdentityMapping{}
	// With the access entry target on, the operator writes the mapping's
	// status meanwhile: read again on a conflict.
	err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		if err := b.k.Get(ctx, types.NamespacedName{Name: name}, m); err != nil {
			return err
		}
		m.Spec.Username = iamv1alpha1.IdentityName(username)
		return b.k.Update(ctx, m)
	})
	if err != nil {
		return "", "", err
	}
	b.remember(m)
	return m.Spec.ARN, username, nil
}

// churnName is the mapping the change event i creates or changes; those
// made with the access entry target on have names of their own.
func (b *bench) churnName(i int, eks bool) string {
	tag := b.op.mode
	if eks {
		tag += "-eks"
	}
	return fmt.Sprintf("churn-%s-%03d", tag, i/2)
}

func (b *bench) reportOutage(rep *report, kind, mode string, samples []outageSample, lost int) {
	title := outageTitles[kind]
	if kind == "change" {
		title += ", " + mode
	}
	var totals, longest, props, gaps, absent []time.Duration
	hit, deletes, stillDown := 0, 0, 0
	var polls int64
	for _, s := range samples {
		totals = append(totals, s.total())
		longest = append(longest, s.longest())
		props = append(props, s.propagation)
		gaps = append(gaps, s.MaxGap)
		absent = append(absent, s.absent)
		if len(s.Outages) > 0 {
			hit++
		}
		if s.StillDown {
			stillDown++
		}
		deletes += s.deletes
		polls += s.Polls
	}
	t, l, g := summarize(totals), summarize(longest), summarize(gaps)
	if kind == "change" && mode == "immutable" && b.eks == nil {
		b.changeOutage = &t
	}
	rep.latency(secOutage, fmt.Sprintf("%s: not mapped per event, total", title), t)
	rep.latency(secOutage, fmt.Sprintf("%s: not mapped per event, longest", title), l)
	if kind == "change" {
		rep.latency(secOutage, fmt.Sprintf("%s: change → the authenticator serves it (batch delay 200 ms included)", title), summarize(props))
	} else {
		rep.latency(secOutage, fmt.Sprintf("%s: DELETE → the authenticator serves aws-auth again", title), summarize(props))
	}
	rep.latency(secOutage, fmt.Sprintf("%s: aws-auth absent per event as the bench's own watch saw it (DELETED → ADDED)", title), summarize(absent))
	rep.latency(secOutage, fmt.Sprintf("%s: probe resolution (longest pause between two lookups)", title), g)
	rep.figure(secOutage, title+": events with any \"not mapped\"", fmt.Sprintf("%d of %d (%d DELETED events on the watch; all not-mapped time together %s)", hit, len(samples), deletes, ms(t.Total)))
	rep.note(secOutage, "- **%s**: %d events, %d lookups in all (%.0f per event); in %d events the role was not mapped at some point, for %s in all; the watcher saw %d DELETED events of aws-auth, each of which empties the authenticator's map until the next ADDED.",
		title, len(samples), polls, float64(polls)/float64(max(1, len(samples))), hit, ms(t.Total), deletes)
	if stillDown > 0 {
		rep.note(secOutage, "  In %d events the role was still not mapped when the probe stopped.", stillDown)
	}

	switch {
	case kind == "change" && mode == "mutable":
		met := t.Max == 0 && deletes == 0
		rep.target("2a. outage per change, mutable", "zero", outageGot(t, hit, deletes), met, zeroWhy(t, deletes)+
			"In mutable mode every change should be an update in place (one MODIFIED event), which never empties the authenticator's map.")
	case kind == "finalizer":
		met := t.Max == 0 && deletes == 0
		mechanism := ""
		if deletes > 0 {
			mechanism = "The finalizer does hold the deleted aws-auth, and the authenticator keeps serving it while it is terminating (a MODIFIED event with the same data). " +
				"But the operator then replaces the terminating object as for any other change: it removes the finalizer, so the object goes and the authenticator gets DELETED " +
				"(its MapStore empties every map on DELETED, pkg/mapper/configmap/configmap.go), then creates the new aws-auth (ADDED). " +
				"The window is the same as in 2b minus the operator's reaction to the delete: one create round trip plus the watch delivery. " +
				"Zero would need the operator to leave a terminating aws-auth in place while its data is still right, or the authenticator to keep its last map on DELETED. " +
				"The operator does not leave it, on purpose (it replaces a terminating aws-auth when it sees one): a `kubectl delete` would then hang until the next mapping change, aws-auth would show Terminating for days, and removing its finalizer (the README's break-glass step) would delete it at once, with the operator down."
		}
		rep.target("2c. outage per plain delete (finalizer)", "zero", outageGot(t, hit, deletes), met, zeroWhy(t, deletes)+mechanism)
	default:
		met := t.P99 < 20*time.Millisecond
		name := "2b. outage per delete, finalizer bypassed"
		why := "With the finalizer gone nothing holds aws-auth: the authenticator drops every mapping on DELETED and maps again only on the ADDED of the operator's new object, so the window is the watch delivery to the operator, its reconcile (one read) and the create, as in 1. " +
			fmt.Sprintf("In %d of %d events the operator was still restoring the removed finalizer when the DELETE landed and healed one reconcile later (see 1). ", min(lost, len(samples)), len(samples))
		if b.healGap != nil {
			why += fmt.Sprintf("The bench's own watch saw aws-auth absent p99 %s here, against p99 %s in 1, where no probe runs. ", ms(summarize(absent).P99), ms(b.healGap.P99))
		}
		if kind == "change" {
			name = "2a. outage per change, immutable"
			why = "Every change to immutable data is a replace: the operator deletes aws-auth (held by the finalizer: still served), removes the finalizer (the object goes: DELETED empties the authenticator's map) and creates the new one (ADDED). The window is one create round trip plus two watch deliveries."
		}
		rep.target(name, "p99 < 20 ms", fmt.Sprintf("p99 %s, max %s (%d of %d events hit)", ms(t.P99), ms(t.Max), hit, len(samples)), met, over(t.P99, 20*time.Millisecond)+why)
	}
}

func outageGot(t dist, hit, deletes int) string {
	return fmt.Sprintf("%d of %d events not mapped for a while (p50 %s, p99 %s, max %s); %d DELETED events", hit, t.N, ms(t.P50), ms(t.P99), ms(t.Max), deletes)
}

func zeroWhy(t dist, deletes int) string {
	if t.Max == 0 && deletes > 0 {
		return fmt.Sprintf("The probe never caught \"not mapped\", but the watch saw %d DELETED events, and the authenticator empties its map on each: windows shorter than the probe's resolution. ", deletes)
	}
	return fmt.Sprintf("Over by %s per event at p99 (max %s). ", ms(t.P99), ms(t.Max))
}
