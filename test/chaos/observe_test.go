package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// observation is aws-auth as one observer saw it at one moment. A
// terminating aws-auth is present: its finalizer keeps it, and the
// authenticator's informer keeps serving it, until it is gone.
type observation struct {
	at      time.Time
	present bool
	entries map[string]bool // entryKey of every entry it serves
}

// timeline is what one observer saw, in the order it saw it.
type timeline struct {
	mu  sync.Mutex
	obs []observation
	// byVersion shares the parsed entries between observations of the same
	// object version (the poller sees each many times).
	byVersion map[string]map[string]bool
}

func (tl *timeline) record(at time.Time, cm *corev1.ConfigMap) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if cm == nil {
		tl.obs = append(tl.obs, observation{at: at})
		return
	}
	version := string(cm.UID) + "/" + cm.ResourceVersion
	entries, ok := tl.byVersion[version]
	if !ok {
		parsed, _ := awsauth.Parse(cm.Data)
		entries = make(map[string]bool, len(parsed))
		for _, e := range parsed {
			entries[entryKey(e)] = true
		}
		tl.byVersion[version] = entries
	}
	tl.obs = append(tl.obs, observation{at: at, present: true, entries: entries})
}

func (tl *timeline) observations() []observation {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.obs)
}

// entryKey says everything the authenticator reads of an entry.
func entryKey(e awsauth.Entry) string {
	return string(e.Section) + "|" + e.Identity + "|" + e.Username + "|" + strings.Join(e.Groups, ",")
}

// observer watches aws-auth as the authenticator does (a watch, re-listed
// when it breaks), and polls it as a second opinion that does not depend
// on the watch.
type observer struct {
	watched, polled *timeline
	cancel          context.CancelFunc
	done            sync.WaitGroup
	watchRestarts   int
	pollErrors      int
}

// pollEvery paces the poller: often enough to see a heal, not so often
// that it loads the two cores the operator needs.
const pollEvery = 20 * time.Millisecond

func startObserver(t *testing.T) *observer {
	t.Helper()
	// Bounded even if the test never stops it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	o := &observer{
		watched: &timeline{byVersion: map[string]map[string]bool{}},
		polled:  &timeline{byVersion: map[string]map[string]bool{}},
		cancel:  cancel,
	}
	o.done.Add(2)
	go o.watch(ctx)
	go o.poll(ctx)
	t.Cleanup(o.stop)
	return o
}

// stop ends both observers; safe to call more than once.
func (o *observer) stop() {
	o.cancel()
	o.done.Wait()
}

var awsAuthSelector = "metadata.name=" + managed.AWSAuthKey.Name

func (o *observer) watch(ctx context.Context) {
	defer o.done.Done()
	configMaps := cs.CoreV1().ConfigMaps(managed.AWSAuthKey.Namespace)
	// Each pass lists, then watches from the list; a broken watch (the API
	// server restarted, the resourceVersion expired) starts a new pass.
	for pass := 0; pass < 100000 && ctx.Err() == nil; pass++ {
		if pass > 0 {
			o.watchRestarts++
			pause(ctx, 50*time.Millisecond)
		}
		list, err := configMaps.List(ctx, metav1.ListOptions{FieldSelector: awsAuthSelector})
		if err != nil {
			continue
		}
		now := time.Now()
		if len(list.Items) == 0 {
			o.watched.record(now, nil)
		} else {
			o.watched.record(now, &list.Items[0])
		}
		w, err := configMaps.Watch(ctx, metav1.ListOptions{
			FieldSelector:       awsAuthSelector,
			ResourceVersion:     list.ResourceVersion,
			AllowWatchBookmarks: true,
			TimeoutSeconds:      ptrTo(int64(300)),
		})
		if err != nil {
			continue
		}
		o.follow(w)
		w.Stop()
	}
}

func (o *observer) follow(w watch.Interface) {
	for ev := range w.ResultChan() {
		now := time.Now()
		switch ev.Type {
		case watch.Added, watch.Modified:
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
				o.watched.record(now, cm)
			}
		case watch.Deleted:
			o.watched.record(now, nil)
		case watch.Error:
			return
		}
	}
}

func (o *observer) poll(ctx context.Context) {
	defer o.done.Done()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	// Bounded by the context's deadline; the count is a second bound.
	for range 200000 {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		cm := &corev1.ConfigMap{}
		err := k.Get(ctx, managed.AWSAuthKey, cm)
		now := time.Now()
		switch {
		case apierrors.IsNotFound(err):
			o.polled.record(now, nil)
		case err == nil:
			o.polled.record(now, cm)
		case ctx.Err() == nil:
			o.pollErrors++ // the API server is down: nothing seen
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func ptrTo[T any](v T) *T { return &v }

// epoch is one spec of one mapping: from the moment the test wrote it
// until the next change of that mapping (end zero: still current).
type epoch struct {
	name       string
	key        string
	start, end time.Time
}

// window is a time the operator could not act: killed and not yet
// restarted, or no leader elected.
type window struct {
	from, to time.Time
}

// absence is a time a settled mapping's entry was missing from aws-auth.
type absence struct {
	name     string
	from, to time.Time
	// afterDown: the operator was down at some point of it; length then
	// counts only from when it was back.
	afterDown bool
	length    time.Duration
}

// absences finds, in what one observer saw, every time a mapping's entry
// was missing from aws-auth while the mapping was settled: from the first
// observation that showed its current spec until the test changed or
// deleted it. The windows its own changes cause are left out that way;
// a replace for another mapping's change, a deleted or overwritten
// aws-auth, a crash: all count.
func absences(obs []observation, epochs []epoch, downs []window, end time.Time) []absence {
	var out []absence
	for _, e := range epochs {
		stop := e.end
		if stop.IsZero() {
			stop = end
		}
		i := sort.Search(len(obs), func(i int) bool { return !obs[i].at.Before(e.start) })
		for i < len(obs) && obs[i].at.Before(stop) && !obs[i].entries[e.key] {
			i++
		}
		if i >= len(obs) || !obs[i].at.Before(stop) {
			continue // never settled: the end state check speaks for it
		}
		var since time.Time
		for j := i + 1; j < len(obs) && obs[j].at.Before(stop); j++ {
			has := obs[j].entries[e.key]
			switch {
			case !has && since.IsZero():
				since = obs[j].at
			case has && !since.IsZero():
				out = append(out, classify(e.name, since, obs[j].at, downs))
				since = time.Time{}
			}
		}
		if !since.IsZero() {
			out = append(out, classify(e.name, since, stop, downs))
		}
	}
	return out
}

func classify(name string, from, to time.Time, downs []window) absence {
	a := absence{name: name, from: from, to: to, length: to.Sub(from)}
	for _, d := range downs {
		if d.from.Before(to) && d.to.After(from) {
			a.afterDown = true
			a.length = max(0, min(a.length, to.Sub(d.to)))
		}
	}
	return a
}

// absenceStats sums up absences for the report.
type absenceStats struct {
	count, countAfterDown int
	longest               absence
	longestAfterDown      absence
	total                 time.Duration
}

func statsOf(all []absence) absenceStats {
	var s absenceStats
	for _, a := range all {
		s.total += a.length
		if a.afterDown {
			s.countAfterDown++
			if a.length > s.longestAfterDown.length {
				s.longestAfterDown = a
			}
			continue
		}
		s.count++
		if a.length > s.longest.length {
			s.longest = a
		}
	}
	return s
}

func (a absence) String() string {
	if a.name == "" {
		return "none"
	}
	return fmt.Sprintf("%v (mapping %s, %s to %s)", a.length.Round(time.Millisecond), a.name,
		a.from.Format("15:04:05.000"), a.to.Format("15:04:05.000"))
}
