package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// Each scenario derives its random source from the seed and its own
// number, so one can be run alone (-run) with the same operations.
const (
	scenarioRandomOps = iota + 1
	scenarioKills
	scenarioTakeovers
	scenarioControlPlane
	scenarioDeniedCreate
)

// TestRandomOperations: random mapping changes, deletes of aws-auth (held
// by the finalizer, or past it), overwrites and finalizer removals, under
// one operator. aws-auth ends as the render of the mappings, and no entry
// of a settled mapping is missing longer than -chaos.absence-bound.
func TestRandomOperations(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	since := time.Now()
	l := newLoad(t, scenarioRandomOps)
	l.createAll(ctx)
	op := newReplica(t, "operator", false)
	op.start(t)
	l.expectConverged(t)
	o := startObserver(t)

	l.run(ctx, *numOps, nil)

	expectStable(t, l.expectConverged(t))
	l.report(t)
	checkAbsences(t, o, l, nil)
	expectNoWarnings(t, since)
}

// TestKill9UnderLoad: the same load, and the operator killed with SIGKILL
// at random moments and started again after a random pause. Nothing is
// lost; once the operator is back, every entry is back within
// -chaos.restart-bound.
func TestKill9UnderLoad(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	since := time.Now()
	l := newLoad(t, scenarioKills)
	l.createAll(ctx)
	op := newReplica(t, "operator", false)
	op.start(t)
	l.expectConverged(t)
	o := startObserver(t)

	faults := rand.New(rand.NewPCG(uint64(*seed), 100+scenarioKills))
	killAt := map[int]bool{}
	for len(killAt) < min(*numKills, *numOps/2) {
		killAt[*numOps/10+faults.IntN(max(1, *numOps*8/10))] = true
	}
	// The fault times are drawn here, in the test's goroutine: when, after
	// the operation that triggers it, the kill lands, and how long the
	// operator then stays down.
	type kill struct{ after, down time.Duration }
	kills := make(chan kill, len(killAt))
	var (
		mu     sync.Mutex
		downs  []window
		errs   []error
		killer sync.WaitGroup
	)
	killer.Add(1)
	stopKiller := sync.OnceFunc(func() {
		close(kills)
		killer.Wait()
	})
	// Before the operator's own cleanup, should the load fail the test.
	t.Cleanup(stopKiller)
	go func() {
		defer killer.Done()
		for k := range kills {
			pause(ctx, k.after)
			at, err := op.kill()
			if err == nil {
				pause(ctx, k.down)
				var back time.Time
				back, err = op.launch()
				mu.Lock()
				downs = append(downs, window{from: at, to: back})
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
		}
	}()
	l.run(ctx, *numOps, func(i int) {
		if killAt[i] {
			kills <- kill{
				after: time.Duration(faults.Int64N(int64(3 * *opInterval))),
				down:  time.Duration(faults.Int64N(int64(300 * time.Millisecond))),
			}
		}
	})
	stopKiller()
	NewWithT(t).Expect(errs).To(BeEmpty())
	NewWithT(t).Expect(downs).To(HaveLen(len(killAt)), "kills done")

	expectStable(t, l.expectConverged(t))
	var down durations
	for _, d := range downs {
		down = append(down, d.to.Sub(d.from))
	}
	figure(t, "%d kill -9 of the operator, each started again after %s", len(downs), down)
	l.report(t)
	checkAbsences(t, o, l, downs)
	expectNoWarnings(t, since)
}

// TestLeaderTakeover: two replicas with leader election, under the load;
// the leader is killed with SIGKILL and restarted at once, and right after
// the kill a person deletes aws-auth (held by the finalizer) and a mapping
// changes. The other replica (or the restarted one) takes the Lease once
// it expires, and finishes the job. Takeover and heal times are reported;
// nothing is lost.
func TestLeaderTakeover(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	since := time.Now()
	g := NewWithT(t)
	l := newLoad(t, scenarioTakeovers)
	l.createAll(ctx)
	a, b := newReplica(t, "a", true), newReplica(t, "b", true)
	a.start(t)
	b.start(t)
	expectOneLeader(t, a, b)
	l.expectConverged(t)
	o := startObserver(t)

	phase := max(1, *numOps/(*numTakeovers+1))
	var (
		downs                        []window
		takeovers, heals, afterLease durations
		leaseDuration                int32
	)
	for i := range *numTakeovers {
		l.run(ctx, phase, nil)
		leader := expectOneLeader(t, a, b)
		lease := getLease(g)
		previous := holder(lease)
		g.Expect(lease.Spec.LeaseDurationSeconds).To(HaveValue(BeEquivalentTo(replicaLease.Seconds())), "the Lease does not have the duration the replicas were given")
		leaseDuration = *lease.Spec.LeaseDurationSeconds
		killed := leader.kill9(t)
		// Work for the next leader: a person's delete of aws-auth, which
		// the finalizer holds, and a mapping change.
		deleted := deleteHeld(ctx, t)
		l.update(ctx, l.pickUpdatable())
		l.counts[opUpdate]++
		leader.start(t)

		var acquired time.Time
		var next string
		g.Eventually(func(g Gomega) {
			lease := getLease(g)
			next = holder(lease)
			g.Expect(next).NotTo(BeEmpty())
			g.Expect(next).NotTo(Equal(previous), "the dead leader still holds the Lease")
			acquired = time.Now()
			if lease.Spec.AcquireTime != nil && lease.Spec.AcquireTime.After(killed) {
				acquired = lease.Spec.AcquireTime.Time
			}
		}).WithTimeout(3*timeout).WithPolling(interval).Should(Succeed(), "no replica took the Lease over")
		downs = append(downs, window{from: killed, to: acquired})
		var healed time.Time
		g.Eventually(func(g Gomega) {
			live := &corev1.ConfigMap{}
			g.Expect(k.Get(ctx, managed.AWSAuthKey, live)).To(Succeed())
			g.Expect(live.DeletionTimestamp).To(BeNil())
			g.Expect(live.UID).NotTo(Equal(deleted))
			entries, _ := awsauth.Parse(live.Data)
			g.Expect(entries).To(Equal(l.expected()))
			healed = time.Now()
		}).WithTimeout(3*timeout).WithPolling(interval).Should(Succeed(), "the new leader did not heal aws-auth")
		newLeader := expectOneLeader(t, a, b)
		takeovers = append(takeovers, acquired.Sub(killed))
		heals = append(heals, healed.Sub(killed))
		afterLease = append(afterLease, healed.Sub(acquired))
		figure(t, "takeover %d: leader %s killed; %s took the Lease %v later (lease duration %ds), aws-auth healed %v after the kill",
			i+1, leader.name, newLeader.name, acquired.Sub(killed).Round(time.Millisecond), leaseDuration, healed.Sub(killed).Round(time.Millisecond))
		// A kill -9 cannot release the Lease: the next leader waits it out.
		g.Expect(acquired.Sub(killed)).To(BeNumerically("<", time.Duration(leaseDuration)*time.Second+2*timeout),
			"the takeover took longer than the lease duration allows")
		g.Expect(healed.Sub(acquired)).To(BeNumerically("<=", *restartBound), "the new leader took too long to heal aws-auth")
	}
	l.run(ctx, phase, nil)

	expectStable(t, l.expectConverged(t))
	figure(t, "%d takeovers: kill to Lease acquired %s; kill to aws-auth healed %s; Lease acquired to healed %s",
		len(takeovers), takeovers, heals, afterLease)
	l.report(t)
	checkAbsences(t, o, l, downs)
	expectNoWarnings(t, since)
}

// deleteHeld deletes aws-auth as `kubectl delete` does (the finalizer
// holds it) and returns the UID of the object deleted. When there is none
// (the load just deleted it past the finalizer) or it is already being
// deleted, there is nothing to add: the next leader has that to heal.
func deleteHeld(ctx context.Context, t *testing.T) types.UID {
	t.Helper()
	live := &corev1.ConfigMap{}
	if err := k.Get(ctx, managed.AWSAuthKey, live); apierrors.IsNotFound(err) {
		return ""
	} else if err != nil {
		t.Fatal(err)
	}
	uid := live.UID
	err := k.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		t.Fatalf("deleting aws-auth: %v", err)
	}
	return uid
}

// TestControlPlaneRestart: kube-apiserver and etcd stopped under the
// operator and started again with the same data. The operator does not
// crash, writes nothing it need not once the API server is back, heals a
// deletion of aws-auth made right after within -chaos.restart-bound, and
// renders a mapping change. Its informers retry every
// controllers.ReconnectInterval while the API server is away; once it is
// back, the restarted server answers their resumed watches with 410 Gone
// and client-go lists again after a step of its backoff, which grows over
// restarts less than two minutes apart (to [30s, 60s) at most): so the
// mapping change is bounded by reflectorBackoffMax plus the restart bound.
func TestControlPlaneRestart(t *testing.T) {
	resetCluster(t)
	ctx := testContext(t)
	since := time.Now()
	g := NewWithT(t)
	l := newLoad(t, scenarioControlPlane)
	l.createAll(ctx)
	op := newReplica(t, "operator", false)
	op.start(t)
	l.expectConverged(t)
	o := startObserver(t)

	var downs []window
	var stops, starts, heals, renders, readies durations
	for i := range *numRestarts {
		l.run(ctx, max(1, *numOps/(*numRestarts+1)), nil)
		before := l.expectConverged(t)
		_, pid := op.running()

		stopped := time.Now()
		graceful := stopControlPlane(t)
		stops = append(stops, time.Since(stopped))
		g.Consistently(func(g Gomega) {
			err := k.Get(ctx, managed.AWSAuthKey, &corev1.ConfigMap{})
			g.Expect(err).To(HaveOccurred(), "the API server still answers")
			running, now := op.running()
			g.Expect(running).To(BeTrue(), "the operator exited while the API server was down")
			g.Expect(now).To(Equal(pid))
		}).WithTimeout(*apiDown).WithPolling(100 * time.Millisecond).Should(Succeed())

		restarted := time.Now()
		g.Expect(env.ControlPlane.Etcd.Start()).To(Succeed())
		g.Expect(env.ControlPlane.APIServer.Start()).To(Succeed())
		var after *corev1.ConfigMap
		g.Eventually(func(g Gomega) {
			after = &corev1.ConfigMap{}
			g.Expect(k.Get(ctx, managed.AWSAuthKey, after)).To(Succeed())
		}).WithTimeout(2 * timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		back := time.Now()
		starts = append(starts, back.Sub(restarted))
		// Nothing could change while it was down, and the reconnected
		// operator found nothing to do.
		g.Expect(after.UID).To(Equal(before.UID))
		g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
		running, now := op.running()
		g.Expect(running).To(BeTrue(), "the operator exited")
		g.Expect(now).To(Equal(pid), "the operator was restarted")

		// The operator still watches: a deletion past the finalizer is
		// healed, a mapping change rendered.
		deleted := time.Now()
		g.Expect(bypassDelete(ctx, t)).To(BeTrue())
		var healed time.Time
		g.Eventually(func(g Gomega) {
			live := &corev1.ConfigMap{}
			g.Expect(k.Get(ctx, managed.AWSAuthKey, live)).To(Succeed())
			g.Expect(live.UID).NotTo(Equal(before.UID))
			entries, _ := awsauth.Parse(live.Data)
			g.Expect(entries).To(Equal(l.expected()))
			healed = time.Now()
		}).WithTimeout(*restartBound).WithPolling(10*time.Millisecond).Should(Succeed(), "the operator did not heal aws-auth after the restart")
		heals = append(heals, healed.Sub(deleted))
		// The outage this scenario measures itself: left out of the
		// absence check, bounded here.
		downs = append(downs, window{from: stopped, to: healed})
		l.update(ctx, l.pickUpdatable())
		l.counts[opUpdate]++
		// From the moment the API server accepted the change: right after a
		// restart the test's own requests may wait out a Retry-After.
		changed := time.Now()
		g.Eventually(func(g Gomega) {
			live := &corev1.ConfigMap{}
			g.Expect(k.Get(ctx, managed.AWSAuthKey, live)).To(Succeed())
			entries, _ := awsauth.Parse(live.Data)
			g.Expect(entries).To(Equal(l.expected()))
		}).WithTimeout(reflectorBackoffMax+*restartBound).WithPolling(10*time.Millisecond).Should(Succeed(), "the mapping change did not reach aws-auth after the restart")
		renders = append(renders, time.Since(changed))
		l.expectConvergedWithin(t, reflectorBackoffMax+*restartBound)
		readies = append(readies, time.Since(changed))
		how := "stopped by SIGTERM"
		if !graceful {
			how = fmt.Sprintf("killed %v after SIGTERM, its graceful shutdown unfinished", *apiGrace)
		}
		figure(t, "restart %d: kube-apiserver %s; control plane down %v, answering %v after its start; aws-auth deleted past the finalizer then healed in %v; a mapping change then in aws-auth in %v, every mapping Ready (as the test's client saw it) in %v",
			i+1, how, back.Sub(stopped).Round(time.Millisecond), starts[i].Round(time.Millisecond), heals[i].Round(time.Millisecond), renders[i].Round(time.Millisecond), readies[i].Round(time.Millisecond))
	}
	l.run(ctx, max(1, *numOps/(*numRestarts+1)), nil)

	expectStable(t, l.expectConverged(t))
	figure(t, "%d control plane restarts: stop %s; heal of a deleted aws-auth right after %s; a mapping change then in aws-auth in %s, every mapping Ready in %s", len(heals), stops, heals, renders, readies)
	l.report(t)
	checkAbsences(t, o, l, downs)
	expectNoWarnings(t, since)
}

// stopControlPlane stops kube-apiserver, then etcd, and reports whether
// kube-apiserver finished its graceful shutdown in time: with watches open
// it waits up to its request timeout (60s) for them, and envtest kills it
// after -chaos.apiserver-grace.
func stopControlPlane(t *testing.T) bool {
	t.Helper()
	g := NewWithT(t)
	err := env.ControlPlane.APIServer.Stop()
	graceful := err == nil
	if err != nil {
		g.Expect(err.Error()).To(ContainSubstring("timeout waiting for process kube-apiserver to stop"))
	}
	// envtest sends SIGKILL and returns: wait until the port is free.
	host := strings.TrimPrefix(cfg.Host, "https://")
	g.Eventually(func() error {
		conn, err := net.DialTimeout("tcp", host, 100*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			return fmt.Errorf("kube-apiserver still listens on %s", host)
		}
		return nil
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	g.Expect(env.ControlPlane.Etcd.Stop()).To(Succeed())
	return graceful
}

// reflectorBackoffMax is the longest client-go's reflector waits between
// two attempts to list and watch (k8s.io/client-go/tools/cache/reflector.go:
// defaultBackoffMax 30s, jitter 1.0).
const reflectorBackoffMax = 60 * time.Second
