package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	r := startRunLocal(t)
	g := NewWithT(t)
	r.waitUp(g)

	// The operator found config/policy in force as `make run` applies it
	// (through kustomize), and said nothing worse.
	g.Eventually(func() int { return strings.Count(r.output.String(), "is installed as shipped and denies") }).
		WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Equal(len(controllers.ProtectionPolicies)), "one line per policy of config/policy")
	g.Expect(r.output.String()).NotTo(ContainSubstring("protection\tWarning"))
	g.Expect(r.errors()).To(BeEmpty())

	// Without EKS=fake, nothing of access entries: no AWS client in the
	// operator, no fake, nothing about them in what to try.
	manager := r.process(g, "manager")
	g.Expect(manager.args).NotTo(ContainElement(HavePrefix("--eks-cluster-name")))
	g.Expect(r.statePath()).NotTo(BeAnExistingFile())
	g.Expect(r.output.String()).NotTo(ContainSubstring("localcluster entries"))

	r.stopAndCheck(g, nil)
}

// TestRunLocalWithFakeEKS is `make run EKS=fake`: the samples' access
// entries appear in the fake EKS, tagged as the operator's, beside the
// creator's, which is left alone; one deleted out of band comes back
// within a resync; kubectl shows AccessEntrySynced; and SIGTERM stops the
// fake with everything else.
func TestRunLocalWithFakeEKS(t *testing.T) {
	r := startRunLocal(t, "EKS=fake")
	g := NewWithT(t)
	r.waitUp(g)
	began := time.Now()

	// What to try names the entries command with this run's state file.
	entriesCmd := r.localcluster + " entries --state " + r.statePath()
	g.Expect(r.output.String()).To(ContainSubstring(entriesCmd + "\n"))
	g.Expect(r.output.String()).To(ContainSubstring(entriesCmd + " delete " + ciDeployer))

	// The operator talks to the fake alone: both endpoints on loopback,
	// the fake's dummy credentials, and the cluster named.
	state := readState(t, r.statePath())
	fake, err := url.Parse(state["AWS_ENDPOINT_URL_EKS"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fake.Hostname()).To(Equal("127.0.0.1"))
	manager := r.process(g, "manager")
	g.Expect(manager.args).To(ContainElements("--eks-cluster-name", "local", "--access-entry-resync", "5s"))
	env := environ(manager.pid)
	for _, k := range []string{"AWS_ENDPOINT_URL_EKS", "AWS_ENDPOINT_URL_IAM", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		g.Expect(env).To(HaveKeyWithValue(k, state[k]), "the operator's %s", k)
	}
	g.Expect(state["AWS_ENDPOINT_URL_IAM"]).To(Equal(state["AWS_ENDPOINT_URL_EKS"]))

	// The script printed what to try only once every sample's entry was
	// there: they are, tagged with their mapping's name, with the
	// translation of each sample, and the creator's is untouched.
	entries := r.entries(g)
	g.Expect(entries).To(HaveKeyWithValue("arn:aws:iam::111122223333:role/eks-nodes",
		entryRow{Type: "EC2_LINUX", Username: "system:node:{{EC2PrivateDNSName}}", Groups: "-", Policies: "-", Tag: "nodes"}))
	g.Expect(entries).To(HaveKeyWithValue("arn:aws:iam::111122223333:role/platform/admins",
		entryRow{Type: "STANDARD", Username: "admin:{{SessionName}}", Groups: "platform:admins", Policies: "-", Tag: "admins"}))
	g.Expect(entries).To(HaveKeyWithValue(ciDeployer,
		entryRow{Type: "STANDARD", Username: "ci-deployer", Groups: "ci:deployers", Policies: "-", Tag: "ci-deployer"}))
	g.Expect(entries).To(HaveKeyWithValue("arn:aws:iam::111122223333:role/cluster-creator",
		HaveField("Policies", "AmazonEKSClusterAdminPolicy(cluster)")))
	g.Expect(entries["arn:aws:iam::111122223333:role/cluster-creator"].Tag).To(Equal("-"), "the creator's entry is not the operator's")
	g.Expect(entries).To(HaveLen(4))

	// kubectl get iim -o wide: every sample's AccessEntrySynced is Applied.
	wide := r.kubectl(g, "get", "iim", "-o", "wide")
	lines := strings.Split(strings.TrimSpace(wide), "\n")
	column := slices.Index(strings.Fields(lines[0]), "ACCESS-ENTRY")
	g.Expect(column).To(BeNumerically(">", 0), "kubectl get iim -o wide:\n%s", wide)
	for _, line := range lines[1:] {
		g.Expect(strings.Fields(line)[column]).To(Equal("Applied"), "kubectl get iim -o wide:\n%s", wide)
	}
	g.Expect(lines).To(HaveLen(4), "the header and the three samples")

	// Deleted out of band, the ci-deployer's entry is back, tagged, within
	// a few resyncs of 5s.
	out, err := exec.Command(r.localcluster, "entries", "--state", r.statePath(), "delete", ciDeployer).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(r.entries(g)).NotTo(HaveKey(ciDeployer))
	deleted := time.Now()
	g.Eventually(func(g Gomega) {
		g.Expect(r.entries(g)).To(HaveKeyWithValue(ciDeployer, HaveField("Tag", "ci-deployer")))
	}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	t.Logf("the deleted entry was back %v after the delete (%v after the banner)",
		time.Since(deleted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	// The event is recorded after the create that the entries show.
	g.Eventually(func(g Gomega) string { return r.kubectl(g, "describe", "iim", "ci-deployer") }).
		WithTimeout(10 * time.Second).WithPolling(250 * time.Millisecond).
		Should(MatchRegexp(`Normal\s+Restored\s+.*Restored the access entry of ` + regexp.QuoteMeta(ciDeployer)))
	g.Expect(r.errors()).To(BeEmpty())

	// The fake's port is freed with the rest, and its state file removed.
	port, err := strconv.Atoi(fake.Port())
	g.Expect(err).NotTo(HaveOccurred())
	r.stopAndCheck(g, []int{port})
	g.Expect(r.statePath()).NotTo(BeAnExistingFile())
}

// ciDeployer is the principal of the sample mapping ci-deployer.
const ciDeployer = "arn:aws:iam::111122223333:user/ci/deployer"

// managerBinary is the operator as it is now, built once for the tests
// here rather than taken from bin/manager, which may be stale or missing.
var managerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "run-local-test-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	manager := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", manager, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the operator: %w\n%s", err, out)
	}
	return manager, nil
})

// buildDir holds managerBinary, removed when the tests are done.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runLocal is one hack/run-local.sh, started as `make run` starts it but
// on free ports and in a directory of the test's own.
type runLocal struct {
	t                      *testing.T
	dir, localcluster      string
	kubectlBinary          string
	metricsPort, probePort int
	script                 *exec.Cmd
	output                 *syncBuffer
	exited                 chan error
	// tree is what the script started, once it is up.
	tree []process
}

// startRunLocal starts the script with env added to the test's own
// environment.
func startRunLocal(t *testing.T, env ...string) *runLocal {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "controlplane")
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("no %s in %s: run `make controlplane` first (6 to 20+ minutes, once): %v", bin, assets, err)
		}
	}
	manager, err := managerBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Free ports rather than 8080 and 8081: a `make run` or another test
	// may hold those.
	r := &runLocal{
		t: t, dir: dir, localcluster: filepath.Join(dir, "localcluster"), kubectlBinary: filepath.Join(assets, "kubectl"),
		metricsPort: freePort(t), probePort: freePort(t), output: &syncBuffer{}, exited: make(chan error, 1),
	}
	r.script = exec.Command(filepath.Join(root, "hack", "run-local.sh"))
	r.script.Dir = root
	r.script.Env = append(os.Environ(),
		"MANAGER_BINARY="+manager,
		"LOCALCLUSTER_BINARY="+r.localcluster,
		"KUBEBUILDER_ASSETS="+assets,
		"KUBECTL="+r.kubectlBinary,
		"RUN_LOCAL_DIR="+filepath.Join(dir, "local"),
		fmt.Sprintf("METRICS_BIND_ADDRESS=127.0.0.1:%d", r.metricsPort),
		fmt.Sprintf("HEALTH_PROBE_BIND_ADDRESS=127.0.0.1:%d", r.probePort),
		// Whatever the person running the tests has set, unless env says.
		"EKS=",
	)
	r.script.Env = append(r.script.Env, env...)
	r.script.Stdout, r.script.Stderr = r.output, r.output
	// A group of its own, so that the cleanup below can reach whatever a
	// failed run left in it; the tests themselves signal the script alone.
	r.script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.script.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.script.Wait() }()
	t.Cleanup(func() {
		// Only after a failure is anything left: kill it, so that a
		// failed run does not hold ports for the tests that follow.
		_ = syscall.Kill(-r.script.Process.Pid, syscall.SIGKILL)
		for _, p := range r.tree {
			if p.running() {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("hack/run-local.sh said:\n%s", r.output.String())
		}
	})
	return r
}

// waitUp waits until readyz answers and the script has printed what to
// try, which it does once the operator has created aws-auth (and, with
// EKS=fake, every sample's access entry); then it records what the script
// started.
func (r *runLocal) waitUp(g Gomega) {
	probe := fmt.Sprintf("http://127.0.0.1:%d/readyz", r.probePort)
	g.Eventually(func(g Gomega) {
		select {
		case err := <-r.exited:
			StopTrying(fmt.Sprintf("hack/run-local.sh exited before the operator was up: %v", err)).Now()
		default:
		}
		g.Expect(get(probe)).To(Equal(http.StatusOK))
		g.Expect(r.output.String()).To(ContainSubstring("Ctrl-C stops the operator and the control plane"))
	}).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(r.output.String()).To(ContainSubstring("aws-auth-guardian is running"))

	r.tree = descendants(r.script.Process.Pid)
	var names []string
	for _, p := range r.tree {
		names = append(names, p.name())
	}
	for _, want := range []string{"localcluster", "etcd", "kube-apiserver", "manager"} {
		g.Expect(names).To(ContainElement(want), "the processes under hack/run-local.sh: %v", r.tree)
	}
}

// process is the one process named name that the script started.
func (r *runLocal) process(g Gomega, name string) process {
	var found []process
	for _, p := range r.tree {
		if p.name() == name {
			found = append(found, p)
		}
	}
	g.Expect(found).To(HaveLen(1), "processes named %s under hack/run-local.sh: %v", name, r.tree)
	return found[0]
}

// errors are the lines of what the script printed that log an error, so
// that a failure names them rather than the whole output.
func (r *runLocal) errors() []string {
	var found []string
	for _, line := range strings.Split(r.output.String(), "\n") {
		if strings.Contains(line, "ERROR") {
			found = append(found, line)
		}
	}
	return found
}

// statePath is where localcluster writes the fake EKS's address.
func (r *runLocal) statePath() string { return filepath.Join(r.dir, "local", "eks-fake.env") }

func (r *runLocal) kubectl(g Gomega, args ...string) string {
	cmd := exec.Command(r.kubectlBinary, append([]string{"--kubeconfig", filepath.Join(r.dir, "local", "kubeconfig")}, args...)...)
	out, err := cmd.Output()
	g.Expect(err).NotTo(HaveOccurred(), "kubectl %v", args)
	return string(out)
}

// entryRow is one line of `localcluster entries`.
type entryRow struct{ Type, Username, Groups, Policies, Tag string }

// entries is what `localcluster entries` prints, by principal.
func (r *runLocal) entries(g Gomega) map[string]entryRow {
	out, err := exec.Command(r.localcluster, "entries", "--state", r.statePath()).Output()
	g.Expect(err).NotTo(HaveOccurred(), "localcluster entries")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"PRINCIPAL", "TYPE", "USERNAME", "GROUPS", "POLICIES", "MAPPING-TAG"}))
	rows := map[string]entryRow{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		g.Expect(f).To(HaveLen(6), "a line of localcluster entries: %q", line)
		rows[f[0]] = entryRow{Type: f[1], Username: f[2], Groups: f[3], Policies: f[4], Tag: f[5]}
	}
	return rows
}

// stopAndCheck sends SIGTERM to the script alone and checks that it ends
// by its own cleanup, that everything it started has ended, and that the
// ports (the operator's, the API server's, etcd's, and more) are free.
func (r *runLocal) stopAndCheck(g Gomega, more []int) {
	ports := []int{r.metricsPort, r.probePort, apiserverPort(r.t, filepath.Join(r.dir, "local", "kubeconfig"))}
	ports = append(ports, etcdPorts(r.tree)...)
	g.Expect(ports).To(HaveLen(5), "metrics, probe, kube-apiserver, etcd client and peer")
	ports = append(ports, more...)

	stopped := time.Now()
	g.Expect(syscall.Kill(r.script.Process.Pid, syscall.SIGTERM)).To(Succeed())
	var status error
	g.Eventually(r.exited).WithTimeout(time.Minute).Should(Receive(&status), "hack/run-local.sh still runs a minute after SIGTERM")
	// 143 (128 + SIGTERM) is the script's own cleanup ending; any other
	// status is the script failing half-way, leaving the rest to chance.
	var exit *exec.ExitError
	g.Expect(errors.As(status, &exit)).To(BeTrue(), "hack/run-local.sh exited with %v", status)
	g.Expect(exit.ExitCode()).To(Equal(143), "hack/run-local.sh exited with %v", status)
	g.Eventually(func() []process {
		var left []process
		for _, p := range r.tree {
			if p.running() {
				left = append(left, p)
			}
		}
		return left
	}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(BeEmpty(), "still running after the script ended")
	// Nothing else either: no process anywhere names this test's
	// directory (the operator, localcluster) or uses the ports.
	g.Expect(processesMentioning(r.dir)).To(BeEmpty())
	for _, port := range ports {
		g.Eventually(func() error { return listen(port) }).
			WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "port %d", port)
	}
	r.t.Logf("everything stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
}

// readState reads the KEY=VALUE lines of the fake's state file.
func readState(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the fake EKS's state file: %v", err)
	}
	state := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			state[k] = v
		}
	}
	return state
}

// environ is the environment a process started with.
func environ(pid int) map[string]string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	env := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
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
