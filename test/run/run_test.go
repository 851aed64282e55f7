package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
)

// TestRunLocalStopsEverythingOnSIGTERM starts hack/run-local.sh as `make
// run` does, waits until the operator is up, sends SIGTERM to the script
// alone (as kill, timeout or a CI step does; not to its process group, as
// a terminal's Ctrl-C does) and checks that every process it started has
// ended and that every port they held is free.
func TestRunLocalStopsEverythingOnSIGTERM(t *testing.T) {
	g := NewWithT(t)
	root, err := filepath.Abs("../..")
	g.Expect(err).NotTo(HaveOccurred())
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "controlplane")
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("no %s in %s: run `make controlplane` first (6 to 20+ minutes, once): %v", bin, assets, err)
		}
	}
	dir := t.TempDir()

	// The operator as it is now, built here rather than taken from
	// bin/manager, which may be stale or missing.
	manager := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", manager, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, out)
	}

	// Free ports rather than 8080 and 8081: a `make run` or another test
	// may hold those.
	metricsPort, probePort := freePort(t), freePort(t)
	output := &syncBuffer{}
	script := exec.Command(filepath.Join(root, "hack", "run-local.sh"))
	script.Dir = root
	script.Env = append(os.Environ(),
		"MANAGER_BINARY="+manager,
		"LOCALCLUSTER_BINARY="+filepath.Join(dir, "localcluster"),
		"KUBEBUILDER_ASSETS="+assets,
		"KUBECTL="+filepath.Join(assets, "kubectl"),
		"RUN_LOCAL_DIR="+filepath.Join(dir, "local"),
		fmt.Sprintf("METRICS_BIND_ADDRESS=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("HEALTH_PROBE_BIND_ADDRESS=127.0.0.1:%d", probePort),
	)
	script.Stdout, script.Stderr = output, output
	// A group of its own, so that the cleanup below can reach whatever a
	// failed run left in it; the test itself signals the script alone.
	script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.Expect(script.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- script.Wait() }()

	var tree []process
	t.Cleanup(func() {
		// Only after a failure is anything left: kill it, so that a
		// failed run does not hold ports for the tests that follow.
		_ = syscall.Kill(-script.Process.Pid, syscall.SIGKILL)
		for _, p := range tree {
			if p.running() {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("hack/run-local.sh said:\n%s", output.String())
		}
	})

	// Up: readyz answers, and the script has printed what to try, which
	// it does once the operator has created aws-auth.
	probe := fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)
	g.Eventually(func(g Gomega) {
		select {
		case err := <-exited:
			StopTrying(fmt.Sprintf("hack/run-local.sh exited before the operator was up: %v", err)).Now()
		default:
		}
		g.Expect(get(probe)).To(Equal(http.StatusOK))
		g.Expect(output.String()).To(ContainSubstring("aws-auth-guardian is running"))
	}).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())

	// The operator found config/policy in force as `make run` applies it
	// (through kustomize), and said nothing worse.
	g.Eventually(func() int { return strings.Count(output.String(), "is installed as shipped and denies") }).
		WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Equal(len(controllers.ProtectionPolicies)), "one line per policy of config/policy")
	g.Expect(output.String()).NotTo(ContainSubstring("protection\tWarning"))
	g.Expect(output.String()).NotTo(ContainSubstring("ERROR"))

	// Everything the script started, and the ports it all holds.
	tree = descendants(script.Process.Pid)
	var names []string
	for _, p := range tree {
		names = append(names, p.name())
	}
	for _, want := range []string{"localcluster", "etcd", "kube-apiserver", "manager"} {
		g.Expect(names).To(ContainElement(want), "the processes under hack/run-local.sh: %v", tree)
	}
	ports := []int{metricsPort, probePort, apiserverPort(t, filepath.Join(dir, "local", "kubeconfig"))}
	ports = append(ports, etcdPorts(tree)...)
	g.Expect(ports).To(HaveLen(5), "metrics, probe, kube-apiserver, etcd client and peer")

	stopped := time.Now()
	g.Expect(syscall.Kill(script.Process.Pid, syscall.SIGTERM)).To(Succeed())
	var status error
	g.Eventually(exited).WithTimeout(time.Minute).Should(Receive(&status), "hack/run-local.sh still runs a minute after SIGTERM")
	// 143 (128 + SIGTERM) is the script's own cleanup ending; any other
	// status is the script failing half-way, leaving the rest to chance.
	var exit *exec.ExitError
	g.Expect(errors.As(status, &exit)).To(BeTrue(), "hack/run-local.sh exited with %v", status)
	g.Expect(exit.ExitCode()).To(Equal(143), "hack/run-local.sh exited with %v", status)
	g.Eventually(func() []process {
		var left []process
		for _, p := range tree {
			if p.running() {
				left = append(left, p)
			}
		}
		return left
	}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(BeEmpty(), "still running after the script ended")
	// Nothing else either: no process anywhere names this test's
	// directory (the operator, localcluster) or uses the ports.
	g.Expect(processesMentioning(dir)).To(BeEmpty())
	for _, port := range ports {
		g.Eventually(func() error { return listen(port) }).
			WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "port %d", port)
	}
	t.Logf("everything stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// listen is nil when port is free on 127.0.0.1.
func listen(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return l.Close()
}

func get(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func apiserverPort(t *testing.T, kubeconfig string) int {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("reading the kubeconfig the script wrote: %v", err)
	}
	_, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(config.Host, "https://"), "/"))
	if err != nil {
		t.Fatalf("the API server's address %q: %v", config.Host, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// etcdPorts are the client and peer ports etcd was told to listen on.
func etcdPorts(tree []process) []int {
	url := regexp.MustCompile(`^--listen-(client|peer)-urls=https?://[^:]+:(\d+)$`)
	var ports []int
	for _, p := range tree {
		if p.name() != "etcd" {
			continue
		}
		for _, arg := range p.args {
			if m := url.FindStringSubmatch(arg); m != nil {
				n, _ := strconv.Atoi(m[2])
				ports = append(ports, n)
			}
		}
	}
	return ports
}

// process is one process, told apart from a later one with the same PID
// by its start time.
type process struct {
	pid   int
	start string
	args  []string
}

func (p process) name() string {
	if len(p.args) == 0 {
		return ""
	}
	return filepath.Base(p.args[0])
}

func (p process) String() string { return fmt.Sprintf("%d %s", p.pid, strings.Join(p.args, " ")) }

// running is true while the process runs; a zombie has ended.
func (p process) running() bool {
	s, ok := readStat(p.pid)
	return ok && s.start == p.start && s.state != "Z"
}

type stat struct {
	state, start string
	ppid         int
}

// readStat reads /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so the fields are those after its last ')'.
func readStat(pid int) (stat, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return stat{}, false
	}
	// state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return stat{state: fields[0], ppid: ppid, start: fields[19]}, true
}

func cmdline(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendants are the running processes below pid, found through their
// parents: etcd and kube-apiserver run in process groups of their own.
func descendants(pid int) []process {
	children := map[int][]process{}
	for _, p := range allPIDs() {
		if s, ok := readStat(p); ok && s.state != "Z" {
			children[s.ppid] = append(children[s.ppid], process{pid: p, start: s.start, args: cmdline(p)})
		}
	}
	var tree []process
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			tree = append(tree, c)
			queue = append(queue, c.pid)
		}
	}
	return tree
}

func processesMentioning(text string) []string {
	var found []string
	for _, pid := range allPIDs() {
		if s, ok := readStat(pid); !ok || s.state == "Z" {
			continue
		}
		if args := cmdline(pid); strings.Contains(strings.Join(args, " "), text) {
			found = append(found, fmt.Sprintf("%d %s", pid, strings.Join(args, " ")))
		}
	}
	return found
}

// syncBuffer is what the script writes, read while it writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
