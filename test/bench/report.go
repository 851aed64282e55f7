package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report gathers the figures as the steps produce them.
type report struct {
	opts                  options
	finished              time.Time
	loadBefore, loadAfter string
	kubernetes            string
	latencies             []latencyRow
	figures               []figureRow
	targets               []targetRow
	notes                 map[string][]string
	skipped               []string
	stepTimes             [][2]string
}

type latencyRow struct {
	section, name string
	d             dist
}

type figureRow struct {
	section, name, value string
}

type targetRow struct {
	what, want, got string
	met             bool
	why             string
}

func newReport(opts options) *report {
	return &report{opts: opts, notes: map[string][]string{}}
}

// Sections, in the order the report presents them.
const (
	secHeal   = "1. Heal latency"
	secOutage = "2. Outage as the authenticator sees it"
	secBurst  = "3. Bursts"
	secScale  = "4. Scale"
	secSteady = "5. Steady state"
	secStart  = "6. Start"
	secAccess = "7. Heal with the access entry target on"
	secEKS    = "8. Access entries: converge, rest, drift, faults, a slow EKS"
)

var sections = []string{secHeal, secOutage, secBurst, secScale, secSteady, secStart, secAccess, secEKS}

func (r *report) latency(section, name string, d dist) {
	r.latencies = append(r.latencies, latencyRow{section, name, d})
}

func (r *report) figure(section, name, value string) {
	r.figures = append(r.figures, figureRow{section, name, value})
}

func (r *report) target(what, want, got string, met bool, why string) {
	r.targets = append(r.targets, targetRow{what, want, got, met, why})
}

func (r *report) note(section, format string, args ...any) {
	r.notes[section] = append(r.notes[section], fmt.Sprintf(format, args...))
}

func (r *report) skip(step, why string) {
	r.skipped = append(r.skipped, fmt.Sprintf("`%s`: %s", step, why))
}

// sorted puts rows in the order of the sections, keeping the
// order they were measured in within a section.
func sorted[T any](rows []T, section func(T) string) []T {
	out := make([]T, 0, len(rows))
	for _, s := range sections {
		for _, row := range rows {
			if section(row) == s {
				out = append(out, row)
			}
		}
	}
	return out
}

func (r *report) sortRows() {
	r.latencies = sorted(r.latencies, func(l latencyRow) string { return l.section })
	r.figures = sorted(r.figures, func(f figureRow) string { return f.section })
	slices.SortStableFunc(r.targets, func(a, b targetRow) int { return strings.Compare(a.what[:2], b.what[:2]) })
}

// print writes the tables to w, for the terminal.
func (r *report) print(w io.Writer) {
	r.sortRows()
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nLATENCY (nearest rank)\tn\tp50\tp99\tmax")
	for _, l := range r.latencies {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", l.name, l.d.N, ms(l.d.P50), ms(l.d.P99), ms(l.d.Max))
	}
	fmt.Fprintln(tw, "\nFIGURE\tvalue")
	for _, f := range r.figures {
		fmt.Fprintf(tw, "%s\t%s\n", f.name, f.value)
	}
	fmt.Fprintln(tw, "\nTARGET\twanted\tmeasured\tresult")
	for _, t := range r.targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.what, t.want, t.got, verdict(t.met))
	}
	tw.Flush()
	for _, s := range r.skipped {
		fmt.Fprintln(w, "NOT RUN:", s)
	}
	fmt.Fprintf(w, "Total run time %s; load average before %s, after %s\n", r.total(), r.loadBefore, r.loadAfter)
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func (r *report) total() time.Duration {
	return r.finished.Sub(r.opts.scriptStart).Round(time.Second)
}

// write renders docs/benchmarks.md.
func (r *report) write(path string) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Benchmarks")
	p("")
	p("The figures of the latest `make bench` run. This file is written by the run itself")
	p("(`test/bench`, started by `hack/bench.sh`); rerun the command below rather than editing it.")
	p("The targets below are the project's own and are never loosened: a missed one says by how much and why.")
	p("")
	p("## How to reproduce")
	p("")
	p("```sh")
	p("make bench        # = make controlplane build, then hack/bench.sh")
	p("```")
	p("")
	p("It needs only Go and the Go module proxy, like `make test`. One run starts a local")
	p("kube-apiserver and etcd (envtest, from `bin/controlplane`), installs the CRD from")
	p("`config/crd/bases` and the namespace `%s`, runs the real `bin/manager` as its own process", operatorNamespace)
	p("(immutable mode unless stated, metrics on a loopback port, no leader election), runs the")
	p("real aws-iam-authenticator ConfigMap mapper in the bench process, measures, prints the")
	p("tables and rewrites this file. Logs of the operator and the authenticator go to `bin/bench-run/`.")
	p("")
	p("## This run")
	p("")
	p("| | |")
	p("| --- | --- |")
	p("| date | %s |", r.finished.UTC().Format("2006-01-02 15:04 MST"))
	p("| command | `%s` |", r.opts.command)
	p("| machine | %s |", machine())
	p("| load average (1, 5, 15 min) | %s at the start, %s at the end: other jobs share this machine, so read single maxima with that in mind |", r.loadBefore, r.loadAfter)
	p("| Go | %s %s/%s |", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	p("| Kubernetes | %s (kube-apiserver and etcd built by `hack/build-controlplane.sh`) |", r.kubernetes)
	p("| libraries | %s |", libraries())
	p("| repository | %s |", gitDescribe(r.opts.root, r.opts.out))
	p("| total run time | %s (from the start of `hack/bench.sh`, building the bench included) |", r.total())
	p("")
	p("## Targets")
	p("")
	p("| target | wanted | measured | result |")
	p("| --- | --- | --- | --- |")
	for _, t := range r.targets {
		p("| %s | %s | %s | %s |", t.what, t.want, t.got, verdict(t.met))
	}
	if len(r.skipped) > 0 {
		p("")
		p("Not run in this run:")
		p("")
		for _, s := range r.skipped {
			p("- %s", s)
		}
	}
	missed := false
	for _, t := range r.targets {
		missed = missed || !t.met
	}
	if missed {
		p("")
		p("### Missed, by how much and why")
		p("")
		for _, t := range r.targets {
			if !t.met {
				p("- **%s**: wanted %s, measured %s. %s", t.what, t.want, t.got, strings.TrimSpace(t.why))
			}
		}
	}
	p("")
	p("## Latencies")
	p("")
	p("Percentiles by nearest rank (p99 of 200 is the 198th smallest).")
	p("")
	p("| measurement | n | p50 | p99 | max |")
	p("| --- | --- | --- | --- | --- |")
	for _, l := range r.latencies {
		p("| %s | %d | %s | %s | %s |", l.name, l.d.N, ms(l.d.P50), ms(l.d.P99), ms(l.d.Max))
	}
	p("")
	p("## Counts and sizes")
	p("")
	p("| measurement | value |")
	p("| --- | --- |")
	for _, f := range r.figures {
		p("| %s | %s |", f.name, f.value)
	}
	p("")
	p("## Details")
	for _, s := range sections {
		if len(r.notes[s]) == 0 {
			continue
		}
		p("")
		p("### %s", s)
		p("")
		for _, n := range r.notes[s] {
			p("%s", n)
		}
	}
	if len(r.stepTimes) > 0 {
		p("")
		p("### Time per step")
		p("")
		var parts []string
		for _, st := range r.stepTimes {
			parts = append(parts, fmt.Sprintf("%s %s", st[0], st[1]))
		}
		p("%s.", strings.Join(parts, ", "))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// What people wrote below the marker (comparisons of runs) stays.
	if old, err := os.ReadFile(path); err == nil {
		if i := strings.Index(string(old), keptMarker); i >= 0 {
			b.WriteString("\n" + string(old[i:]))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// keptMarker starts the part of the report that a run leaves as it is.
const keptMarker = "<!-- Below: written by people, kept by make bench. -->"

// machine is nproc, the CPU model and the memory.
func machine() string {
	nproc := fmt.Sprint(runtime.NumCPU())
	if out, err := exec.Command("nproc").Output(); err == nil {
		nproc = strings.TrimSpace(string(out))
	}
	model, mem := "unknown CPU", "unknown memory"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	return fmt.Sprintf("nproc %s, %s, %s RAM, Linux", nproc, model, mem)
}

func libraries() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	want := []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "sigs.k8s.io/aws-iam-authenticator"}
	var parts []string
	for _, w := range want {
		for _, d := range info.Deps {
			if d.Path == w {
				v := d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
				parts = append(parts, fmt.Sprintf("%s %s", w, v))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// gitDescribe names the commit measured, and says when the tree differs
// from it anywhere but in report, which every rerun rewrites.
func gitDescribe(root, report string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	desc := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)"+report).Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		desc += ", with uncommitted changes"
	}
	return desc
}
