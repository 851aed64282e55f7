// Command bench measures aws-auth-guardian against the project's own
// targets, which are never loosened: against a local kube-apiserver and
// etcd (envtest, from bin/controlplane), with the real operator binary
// (bin/manager) as its own process and the real aws-iam-authenticator
// ConfigMap mapper watching aws-auth as EKS does. It prints a table and
// writes docs/benchmarks.md. hack/bench.sh (make bench) runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	root, workdir, out, command string
	reps                        int
	timeout                     time.Duration
	only                        []string
	eksSizes                    []int
	scriptStart                 time.Time
}

func main() {
	var opts options
	var only, eksSizes string
	var scriptStart float64
	flag.StringVar(&opts.root, "root", "../..", "The repository root (bin/manager, bin/controlplane, config/crd/bases).")
	flag.StringVar(&opts.workdir, "workdir", "", "Where logs and the kubeconfig go (default <root>/bin/bench-run).")
	flag.StringVar(&opts.out, "out", "docs/benchmarks.md", "The report to write, relative to --root unless absolute.")
	flag.StringVar(&opts.command, "command", "make bench", "The command that ran this, as the report shows it.")
	flag.IntVar(&opts.reps, "reps", 200, "Repetitions of each latency measurement.")
	flag.DurationVar(&opts.timeout, "timeout", 14*time.Minute, "The whole run stops after this.")
	flag.StringVar(&only, "only", "", "Run only these steps, comma-separated (for development; the base mappings are always created).")
	flag.StringVar(&eksSizes, "eks-sizes", "", "The numbers of mappings whose access entries are converged from nothing at a raised rate limit, comma-separated, such as 1000,3000 (100 is measured at the default limit in heal-access-entries); the first also gets the drift step. None by default: 1,000 takes 3 minutes and 3,000 4 more than the 15 of make bench.")
	flag.Float64Var(&scriptStart, "script-start", 0, "Unix time the calling script started, to report the total run time.")
	flag.Parse()
	if only != "" {
		opts.only = strings.Split(only, ",")
	}
	for _, s := range strings.FieldsFunc(eksSizes, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			fatal(fmt.Errorf("--eks-sizes: %q is not a number of mappings of 100 or more", s))
		}
		opts.eksSizes = append(opts.eksSizes, n)
	}
	slices.Sort(opts.eksSizes)
	opts.scriptStart = time.Now()
	if scriptStart > 0 {
		sec, frac := int64(scriptStart), scriptStart-float64(int64(scriptStart))
		opts.scriptStart = time.Unix(sec, int64(frac*1e9))
	}
	var err error
	if opts.root, err = filepath.Abs(opts.root); err != nil {
		fatal(err)
	}
	if opts.workdir == "" {
		opts.workdir = filepath.Join(opts.root, "bin", "bench-run")
	}
	if !filepath.IsAbs(opts.out) {
		opts.out = filepath.Join(opts.root, opts.out)
	}
	if err := os.MkdirAll(opts.workdir, 0o755); err != nil {
		fatal(err)
	}
	// The probe holds one P while it spins; keep enough for the watchers.
	runtime.GOMAXPROCS(max(4, runtime.NumCPU()+2))
	os.Exit(run(opts))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// step is one measurement; a failed step is reported and the run goes on
// with the next one when aws-auth is still sound.
type step struct {
	name string
	run  func(ctx context.Context) error
	// need is a rough lower bound of its run time: a step that cannot
	// finish within the time left is skipped, not cut short.
	need time.Duration
}

func run(opts options) int {
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(interrupted, opts.timeout)
	defer cancel()

	rep := newReport(opts)
	rep.loadBefore = loadavg()
	rep.renderInProcess() // pure CPU: before the control plane starts

	logf("Starting the control plane from %s", filepath.Join(opts.root, "bin", "controlplane"))
	b, err := startCluster(ctx, opts)
	if b != nil {
		defer b.close()
	}
	if err != nil {
		logf("%v", err)
		return 1
	}
	rep.kubernetes = b.kubernetesVersion()
	b.metricsSecure = hasFlag(opts.root, "metrics-secure")
	if err := b.startOperator(ctx, "immutable"); err != nil {
		logf("%v", err)
		return 1
	}
	if b.w, err = startWatcher(ctx, b.cs); err != nil {
		logf("watching aws-auth: %v", err)
		return 1
	}
	// The base: 100 mappings, among them the role the authenticator is
	// asked about and a node role. Creating them is the first scale step.
	if err := b.measureApply(ctx, rep, 100); err != nil {
		logf("creating the base mappings: %v", err)
		return 1
	}
	if err := b.startAuthenticator(ctx); err != nil {
		logf("starting the authenticator's mapper: %v", err)
		return 1
	}
	rep.note(secOutage, "- The authenticator is `configmap.New` and `ConfigMapMapper.Start` of sigs.k8s.io/aws-iam-authenticator v0.7.18, in the bench process: its MapStore watches `kube-system/aws-auth` as EKS's authenticator does, empties its maps on DELETED and parses and replaces them on ADDED and MODIFIED. "+
		"The probe calls its `Map` for `%s` (a mapping no event touches) in a loop on its own OS thread, sleeping %s in the kernel (nanosleep, not a Go timer) between two looks, from just before each event until the authenticator serves the event's result, plus %s, bounded at 30 s. "+
		"A stretch of \"not mapped\" runs from the first look that failed to the first that succeeded again; its resolution is the longest pause between two looks (a row of the latency table): on a loaded 2-core machine the kernel sometimes runs other work for several milliseconds in between. "+
		"Each event starts from rest: aws-auth complete and the operator's worker idle.", lookupARN, ms(pollInterval), ms(settle))

	steps := []step{
		// First, while the mappings are the 100 of the base.
		{"start", func(ctx context.Context) error { return b.measureStart(ctx, rep, min(startReps, opts.reps)) }, 40 * time.Second},
		{"heal", func(ctx context.Context) error { return b.measureHeal(ctx, rep, opts.reps, "") }, 20 * time.Second},
		// Still at the 100 mappings of the base, beside the heal above.
		{"heal-access-entries", func(ctx context.Context) error { return b.measureAccessEntries(ctx, rep, opts.reps) }, 150 * time.Second},
		// At 100 mappings: with 30% of calls throttled the SDK's retry
		// backoff, not the rate limit, sets the pace (about one entry a
		// second), so 1,000 would take a quarter of an hour.
		{"eks-faults", func(ctx context.Context) error { return b.measureEKSFaults(ctx, rep, 100) }, 150 * time.Second},
		{"outage-bypass", func(ctx context.Context) error { return b.measureOutage(ctx, rep, "bypass", opts.reps) }, 30 * time.Second},
		{"outage-finalizer", func(ctx context.Context) error { return b.measureOutage(ctx, rep, "finalizer", opts.reps) }, 30 * time.Second},
		{"outage-change", func(ctx context.Context) error { return b.measureOutage(ctx, rep, "change", opts.reps) }, 60 * time.Second},
		// Beside 1 and 2a above, with the target on and EKS slow.
		// 100 of each: beside 200 at rest they say whether it is worse,
		// and leave the time for the 5,000 below.
		{"slow-eks", func(ctx context.Context) error { return b.measureSlowEKS(ctx, rep, min(opts.reps, 100)) }, 90 * time.Second},
		{"steady", func(ctx context.Context) error { return b.measureSteady(ctx, rep, time.Minute) }, 70 * time.Second},
		{"burst", func(ctx context.Context) error { return b.measureBurst(ctx, rep) }, 60 * time.Second},
		{"memory", func(ctx context.Context) error { return b.measureMemory(ctx, rep) }, 60 * time.Second},
		{"outage-change-mutable", func(ctx context.Context) error { return b.measureMutable(ctx, rep, opts.reps) }, 80 * time.Second},
		{"scale1000", func(ctx context.Context) error { return b.measureApply(ctx, rep, 1000) }, 20 * time.Second},
		{"scale5000", func(ctx context.Context) error { return b.measureApply(ctx, rep, 5000) }, 90 * time.Second},
		{"heal5000", func(ctx context.Context) error {
			if b.count() < 5000 {
				return fmt.Errorf("there are %d mappings, not 5,000: scale5000 did not run", b.count())
			}
			return b.measureHeal(ctx, rep, 50, "at 5,000 mappings")
		}, 30 * time.Second},
	}
	// The access entry sizes, from nothing each, before the 5,000 of the
	// aws-auth scale steps; the first with the drift step.
	var eksSteps []step
	for i, n := range opts.eksSizes {
		eksSteps = append(eksSteps, step{fmt.Sprintf("eks-%d", n), func(ctx context.Context) error { return b.measureEKSScale(ctx, rep, n, i == 0) }, time.Duration(n/10) * time.Second})
	}
	at := slices.IndexFunc(steps, func(s step) bool { return s.name == "scale5000" })
	steps = slices.Insert(steps, at, eksSteps...)
	failed := false
	for _, s := range steps {
		if len(opts.only) > 0 && !slices.Contains(opts.only, s.name) {
			continue
		}
		deadline, _ := ctx.Deadline()
		if left := time.Until(deadline); left < s.need || ctx.Err() != nil {
			rep.skip(s.name, fmt.Sprintf("skipped: %s left of the %s budget, it needs about %s", left.Round(time.Second), opts.timeout, s.need))
			continue
		}
		logf("== %s", s.name)
		start := time.Now()
		if err := s.run(ctx); err != nil {
			failed = true
			logf("%s failed: %v", s.name, err)
			rep.skip(s.name, "failed: "+err.Error())
		}
		rep.stepTimes = append(rep.stepTimes, [2]string{s.name, time.Since(start).Round(100 * time.Millisecond).String()})
	}
	rep.loadAfter = loadavg()
	rep.finished = time.Now()
	rep.print(os.Stdout)
	if interrupted.Err() != nil {
		logf("Interrupted: %s left as it was", opts.out)
		return 130
	}
	if err := rep.write(opts.out); err != nil {
		logf("writing %s: %v", opts.out, err)
		return 1
	}
	logf("Wrote %s; logs in %s", opts.out, opts.workdir)
	if failed {
		return 1
	}
	return 0
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func itoa(n int) string { return strconv.Itoa(n) }
