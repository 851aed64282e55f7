package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	authmetrics "sigs.k8s.io/aws-iam-authenticator/pkg/metrics"
	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// Names that other tools and the policies rely on: fixed, never derived.
const (
	awsAuthNamespace  = "kube-system"
	awsAuthName       = "aws-auth"
	operatorNamespace = "aws-auth-guardian-system"
	noiseNamespace    = "bench-noise"
	account           = "111122223333"
)

// The role the authenticator is asked about in every outage measurement,
// and the node role that keeps the NodesRemoved guard satisfied.
var (
	lookupARN = "arn:aws:iam::" + account + ":role/bench-lookup"
	nodesARN  = "arn:aws:iam::" + account + ":role/bench-nodes"
)

// bench holds the control plane, the operator process and what watches
// aws-auth, plus the mappings the bench created: their render is what
// aws-auth must hold.
type bench struct {
	opts       options
	env        *envtest.Environment
	kubeconfig string
	k          client.Client
	cs         kubernetes.Interface
	op         *operator
	operators  int // started so far, to name their logs
	w          *watcher
	auth       *configmap.ConfigMapMapper
	stopAuth   chan struct{}
	pidFile    string

	mu       sync.Mutex
	mappings map[string]awsauth.Mapping

	// healGap is the absence of aws-auth in the heal measurement, without
	// the probe running, to compare 2b with.
	healGap *dist
}

// startCluster starts kube-apiserver and etcd from bin/controlplane with
// the CRD installed, the operator namespace created, and an admin
// kubeconfig written for the operator and the authenticator.
func startCluster(ctx context.Context, opts options) (*bench, error) {
	b := &bench{opts: opts, mappings: map[string]awsauth.Mapping{}, pidFile: filepath.Join(opts.workdir, "pids")}
	_ = os.Remove(b.pidFile)
	b.env = &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(opts.root, "bin", "controlplane"),
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              []string{filepath.Join(opts.root, "config", "crd", "bases")},
			ErrorIfPathMissing: true,
		},
	}
	if _, err := b.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	b.recordChildren()
	admin, err := b.env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return b, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return b, err
	}
	b.kubeconfig = filepath.Join(opts.workdir, "kubeconfig")
	if err := os.WriteFile(b.kubeconfig, kubeconfig, 0o600); err != nil {
		return b, err
	}
	cfg := rest.CopyConfig(admin.Config())
	// The bench is the load: no client-side throttling.
	cfg.QPS, cfg.Burst = 10000, 10000
	scheme := k8sruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), iamv1alpha1.AddToScheme(scheme)); err != nil {
		return b, err
	}
	if b.k, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return b, err
	}
	proto := rest.CopyConfig(cfg)
	proto.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	proto.ContentType = "application/vnd.kubernetes.protobuf"
	if b.cs, err = kubernetes.NewForConfig(proto); err != nil {
		return b, err
	}
	for _, ns := range []string{operatorNamespace, noiseNamespace} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := b.k.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return b, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return b, nil
}

// recordChildren writes the pids of the processes this program started
// (etcd, kube-apiserver, the operator) to a file, so that hack/bench.sh can
// end exactly these if this program dies without cleaning up.
func (b *bench) recordChildren() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	me := os.Getpid()
	var pids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	_ = os.WriteFile(b.pidFile, []byte(strings.Join(pids, "\n")+"\n"), 0o600)
}

func (b *bench) close() {
	if b.stopAuth != nil {
		close(b.stopAuth)
	}
	if b.op != nil {
		_ = b.op.stop()
	}
	if b.env != nil {
		_ = b.env.Stop()
	}
	_ = os.Remove(b.pidFile)
}

// kubernetesVersion is what the API server reports.
func (b *bench) kubernetesVersion() string {
	v, err := b.cs.Discovery().ServerVersion()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return v.GitVersion
}

// --- the operator, as its own process ---

type operator struct {
	cmd         *exec.Cmd
	mode        string
	metricsURL  string
	readyURL    string
	logPath     string
	exited      chan struct{}
	exitErr     error
	startedFrom time.Time
}

// spawner starts processes from one thread that never exits, so that
// Pdeathsig (sent when the thread that forked the child dies) fires only
// when this program dies, and the operator never outlives the bench.
var spawner = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread()
		for f := range spawner {
			f()
		}
	}()
}

func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner <- func() { errc <- cmd.Start() }
	return <-errc
}

// startOperator runs bin/manager against the local control plane and
// waits until it is ready.
func (b *bench) startOperator(ctx context.Context, mode string) error {
	if b.op != nil {
		if err := b.op.stop(); err != nil {
			return err
		}
	}
	metricsPort, err := freePort()
	if err != nil {
		return err
	}
	probePort, err := freePort()
	if err != nil {
		return err
	}
	b.operators++
	op := &operator{
		mode:       mode,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		readyURL:   fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort),
		logPath:    filepath.Join(b.opts.workdir, fmt.Sprintf("operator-%d-%s.log", b.operators, mode)),
		exited:     make(chan struct{}),
	}
	logFile, err := os.Create(op.logPath)
	if err != nil {
		return err
	}
	op.cmd = exec.Command(filepath.Join(b.opts.root, "bin", "manager"),
		"--kubeconfig", b.kubeconfig,
		"--configmap-mode", mode,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probePort),
		"--backup-namespace", operatorNamespace,
	)
	op.cmd.Stdout, op.cmd.Stderr = logFile, logFile
	op.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn(op.cmd); err != nil {
		logFile.Close()
		return fmt.Errorf("starting bin/manager: %w", err)
	}
	op.startedFrom = time.Now()
	go func() {
		op.exitErr = op.cmd.Wait()
		logFile.Close()
		close(op.exited)
	}()
	b.op = op
	b.recordChildren()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-op.exited:
			return fmt.Errorf("bin/manager exited at start (%v); see %s", op.exitErr, op.logPath)
		default:
		}
		if httpOK(op.readyURL) && httpOK(op.metricsURL) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bin/manager did not become ready in 60s; see %s", op.logPath)
}

func (op *operator) stop() error {
	select {
	case <-op.exited:
		return nil
	default:
	}
	_ = op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.exited:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = op.cmd.Process.Kill()
	select {
	case <-op.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("bin/manager (pid %d) did not exit", op.cmd.Process.Pid)
	}
}

// logSize is where the operator's log ends now.
func (op *operator) logSize() int64 {
	fi, err := os.Stat(op.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// countLog counts the lines of the operator's log after offset that
// contain every one of parts.
func (op *operator) countLog(offset int64, parts ...string) int {
	f, err := os.Open(op.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0
	}
	n := 0
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 16<<20)
	for s.Scan() {
		line := s.Text()
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// lostUpdates counts the operator's failed updates of an aws-auth that was
// deleted meanwhile: it was restoring the finalizer the bench had removed
// when the bench's DELETE landed, and heals one reconcile later.
func (op *operator) lostUpdates(offset int64) int {
	return op.countLog(offset, "Reconciler error", "updating aws-auth", "not found")
}

// status reads a field in kB (VmRSS, VmHWM) of the operator's
// /proc/<pid>/status, in bytes.
func (op *operator) status(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", op.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/<pid>/status", field)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpOK(url string) bool {
	resp, err := httpClient.Get(url)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// --- the operator's metrics ---

// series is one scraped sample: its name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads the operator's Prometheus text endpoint.
func (op *operator) scrape() ([]series, error) {
	resp, err := httpClient.Get(op.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", op.metricsURL, resp.Status)
	}
	var out []series
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sample, ok := parseSample(line)
		if ok {
			out = append(out, sample)
		}
	}
	return out, s.Err()
}

// parseSample reads `name{a="b",c="d"} value` (no timestamps: the
// operator's registry writes none).
func parseSample(line string) (series, bool) {
	sp := series{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i > 0 {
		sp.name, rest = line[:i], line[i:]
	} else {
		return sp, false
	}
	if rest[0] == '{' {
		rest = rest[1:]
		for len(rest) > 0 && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return sp, false
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			for len(rest) > 0 && rest[0] != '"' {
				if rest[0] == '\\' && len(rest) > 1 {
					rest = rest[1:]
				}
				val.WriteByte(rest[0])
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return sp, false
			}
			sp.labels[key] = val.String()
			rest = strings.TrimPrefix(rest[1:], ",")
		}
		rest = strings.TrimPrefix(rest, "}")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return sp, false
	}
	sp.value = v
	return sp, true
}

// sum adds the samples of a metric whose labels pass keep (nil: all).
func sum(samples []series, name string, keep func(map[string]string) bool) float64 {
	total := 0.0
	for _, s := range samples {
		if s.name == name && (keep == nil || keep(s.labels)) {
			total += s.value
		}
	}
	return total
}

// replaces reads aws_auth_guardian_replaces_total.
func (b *bench) replaces() (float64, error) {
	samples, err := b.op.scrape()
	if err != nil {
		return math.NaN(), err
	}
	return sum(samples, "aws_auth_guardian_replaces_total", nil), nil
}

// --- a watcher on aws-auth, timestamps taken in the handler ---

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
func (b *bench) waitSettled(ctx context.Context, hash string, timeout time.Duration) (awsAuthState, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		from := b.w.mark()
		if last, ok := b.w.last(); ok && last.complete(hash) && last.Finalized && last.Immutable == (b.op.mode == "immutable") {
			return last, nil
		}
		_, _ = b.w.waitFor(ctx, from, time.Until(deadline), func(*awsAuthState) bool { return true })
	}
	last, _ := b.w.last()
	return last, fmt.Errorf("aws-auth did not settle on the expected render within %s (last event %s, terminating %v, immutable %v, hash %.12s, want %.12s)",
		timeout, last.Type, last.Terminating, last.Immutable, last.Hash, hash)
}

// waitQuiet waits until the operator's API request counter has not moved
// for quiet: it is at rest, done with status writes that a previous step
// caused (its one worker would otherwise still be busy when the next
// measurement starts).
func (b *bench) waitQuiet(ctx context.Context, quiet, timeout time.Duration) error {
	quietSince, last := time.Now(), -1.0
	err := pollUntil(ctx, timeout, func() bool {
		samples, err := b.op.scrape()
		if err != nil {
			return false
		}
		if n := sum(samples, "rest_client_requests_total", nil); n != last {
			quietSince, last = time.Now(), n
		}
		time.Sleep(100 * time.Millisecond)
		return time.Since(quietSince) >= quiet
	})
	if err != nil {
		return fmt.Errorf("the operator did not come to rest: %w", err)
	}
	return nil
}

// waitIdle waits until the operator's aws-auth controller has no worker
// busy and nothing queued, so that a measurement starts from rest and
// does not wait for the tail of the previous one (a reconcile may go on
// after aws-auth is right, with status and CPU work that makes no request).
func (b *bench) waitIdle(ctx context.Context, timeout time.Duration) error {
	controller := func(l map[string]string) bool { return l["controller"] == "aws-auth" }
	err := pollUntil(ctx, timeout, func() bool {
		samples, err := b.op.scrape()
		if err != nil {
			return false
		}
		idle := sum(samples, "controller_runtime_active_workers", controller) == 0 &&
			sum(samples, "workqueue_depth", controller) == 0
		if !idle {
			time.Sleep(10 * time.Millisecond)
		}
		return idle
	})
	if err != nil {
		return fmt.Errorf("the operator's worker did not become idle: %w", err)
	}
	return nil
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

// --- the real aws-iam-authenticator ConfigMap mapper ---

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

// --- mappings ---

// typical is the mapping most clusters are made of: a team role with a
// session-named user and one group.
func typical(name string) *iamv1alpha1.IAMIdentityMapping {
	return role(name, "arn:aws:iam::"+account+":role/"+name, name+":{{SessionName}}", "team:"+name)
}

func role(name, arn, username string, groups ...string) *iamv1alpha1.IAMIdentityMapping {
	m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: name}}
	m.Spec.ARN = arn
	m.Spec.Username = iamv1alpha1.IdentityName(username)
	for _, g := range groups {
		m.Spec.Groups = append(m.Spec.Groups, iamv1alpha1.IdentityName(g))
	}
	return m
}

func (b *bench) remember(m *iamv1alpha1.IAMIdentityMapping) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mappings[m.Name] = managed.MappingInput(m)
}

func (b *bench) forget(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.mappings, name)
}

func (b *bench) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mappings)
}

// expected renders the mappings the bench created, as the operator must.
func (b *bench) expected() ([]awsauth.Entry, string, error) {
	b.mu.Lock()
	inputs := make([]awsauth.Mapping, 0, len(b.mappings))
	for _, m := range b.mappings {
		inputs = append(inputs, m)
	}
	b.mu.Unlock()
	res := awsauth.Resolve(inputs)
	rendered, err := awsauth.Render(res.Entries)
	if err != nil {
		return nil, "", err
	}
	return rendered.Entries, rendered.Hash, nil
}

func (b *bench) expectedHash() string {
	_, hash, err := b.expected()
	if err != nil {
		return "render failed: " + err.Error()
	}
	return hash
}

// createAll creates objs with bounded concurrency and remembers them; it
// returns when the first create was sent and the last one answered.
func (b *bench) createAll(ctx context.Context, objs []*iamv1alpha1.IAMIdentityMapping, workers int) (first, last time.Time, err error) {
	first = time.Now()
	err = parallel(ctx, len(objs), workers, func(i int) error {
		return retry(ctx, func() error {
			err := b.k.Create(ctx, objs[i])
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}, func() { b.remember(objs[i]) })
	})
	return first, time.Now(), err
}

// deleteAll deletes the named mappings with bounded concurrency; their
// finalizers keep them until aws-auth is written without them.
func (b *bench) deleteAll(ctx context.Context, names []string, workers int) (first, last time.Time, err error) {
	first = time.Now()
	err = parallel(ctx, len(names), workers, func(i int) error {
		m := &iamv1alpha1.IAMIdentityMapping{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		return retry(ctx, func() error { return client.IgnoreNotFound(b.k.Delete(ctx, m)) }, func() { b.forget(names[i]) })
	})
	return first, time.Now(), err
}

// parallel runs f(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// retry tries a write up to 5 times on errors worth retrying; then runs
// onSuccess.
func retry(ctx context.Context, write func() error, onSuccess func()) error {
	var err error
	for attempt := range 5 {
		if err = write(); err == nil {
			onSuccess()
			return nil
		}
		if !apierrors.IsTooManyRequests(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsTimeout(err) &&
			!apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// --- statistics ---

// dist is a distribution summarized by nearest rank.
type dist struct {
	N             int
	P50, P99, Max time.Duration
	Total         time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	d := dist{N: len(s), P50: rank(50), P99: rank(99), Max: s[len(s)-1]}
	for _, v := range s {
		d.Total += v
	}
	return d
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func mib(bytes int64) string {
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}
