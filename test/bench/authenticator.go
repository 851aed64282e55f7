package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	authmetrics "sigs.k8s.io/aws-iam-authenticator/pkg/metrics"
	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
)

// startAuthenticator runs the authenticator's MapStore, which watches
// aws-auth as EKS does, and waits until it maps the lookup role.
func (b *bench) startAuthenticator(ctx context.Context) error {
	authmetrics.InitMetrics(prometheus.NewRegistry())
	// It logs every watch event at info level.
	logrus.SetLevel(logrus.WarnLevel)
	if f, err := os.Create(filepath.Join(b.opts.workdir, "authenticator.log")); err == nil {
		logrus.SetOutput(f)
	}
	ms, err := configmap.New("", b.kubeconfig)
	if err != nil {
		return err
	}
	b.auth = &configmap.ConfigMapMapper{MapStore: ms}
	b.stopAuth = make(chan struct{})
	if err := b.auth.Start(b.stopAuth); err != nil {
		return err
	}
	return pollUntil(ctx, 30*time.Second, func() bool { return b.mapped(lookupARN) })
}

func (b *bench) mapped(arn string) bool {
	_, err := b.auth.Map(&token.Identity{CanonicalARN: arn})
	return err == nil
}

// probe asks the authenticator about the lookup role in a loop and
// records every stretch of "not mapped". Between two looks it sleeps
// pollInterval in the kernel (nanosleep, not a Go timer, whose resolution
// is about a millisecond here): a spinning loop would take one of the two
// cores from the API server and the operator and so lengthen the very
// outages it measures, while a thread woken from sleep is scheduled ahead
// of busy ones.
type probe struct {
	stopping atomic.Bool
	down     atomic.Bool
	done     chan probeResult
}

const pollInterval = 50 * time.Microsecond

type probeResult struct {
	Outages   []time.Duration
	Polls     int64
	MaxGap    time.Duration // longest time between two looks: the resolution
	StillDown bool
}

func (r probeResult) total() time.Duration {
	var t time.Duration
	for _, d := range r.Outages {
		t += d
	}
	return t
}

func (r probeResult) longest() time.Duration {
	var l time.Duration
	for _, d := range r.Outages {
		l = max(l, d)
	}
	return l
}

// maxPolls bounds the loop in count as well as in time.
const maxPolls = 1 << 36

func (b *bench) startProbe(limit time.Duration) *probe {
	p := &probe{done: make(chan probeResult, 1)}
	mapper := b.auth
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		pause := syscall.NsecToTimespec(int64(pollInterval))
		id := &token.Identity{CanonicalARN: lookupARN}
		var r probeResult
		start := time.Now()
		deadline := start.Add(limit)
		prev, downAt := start, time.Time{}
		close(started)
		for i := int64(0); i < maxPolls; i++ {
			now := time.Now()
			r.MaxGap = max(r.MaxGap, now.Sub(prev))
			prev = now
			_, err := mapper.Map(id)
			switch {
			case err != nil && downAt.IsZero():
				downAt = now
				p.down.Store(true)
			case err == nil && !downAt.IsZero():
				r.Outages = append(r.Outages, now.Sub(downAt))
				downAt = time.Time{}
				p.down.Store(false)
			}
			r.Polls++
			_ = syscall.Nanosleep(&pause, nil)
			if i&255 == 0 && (p.stopping.Load() || now.After(deadline)) {
				break
			}
		}
		if !downAt.IsZero() {
			r.Outages = append(r.Outages, time.Since(downAt))
			r.StillDown = true
		}
		p.done <- r
	}()
	<-started
	return p
}

func (p *probe) stop() probeResult {
	p.stopping.Store(true)
	return <-p.done
}
