package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// leaseName is the operator's LeaderElectionID (main.go).
const leaseName = "aws-auth-guardian.iam.aws-auth-guardian.dev"

// replica is one operator process, started from the real binary with the
// flags a Deployment would pass; it can be killed and started again, with
// the same ports and the same log file.
type replica struct {
	name string
	args []string
	// env is the process's environment; nil is the test's.
	env         []string
	metricsAddr string
	probeAddr   string
	logPath     string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	logFile *os.File
}

var (
	replicasMu  sync.Mutex
	allReplicas []*replica
)

// newReplica prepares an operator process and stops it when the test ends.
// With leaderElect, the replicas of a test compete for the Lease in the
// operator namespace.
func newReplica(t *testing.T, name string, leaderElect bool) *replica {
	t.Helper()
	r := &replica{
		name:        name,
		metricsAddr: freeLoopbackAddr(t),
		probeAddr:   freeLoopbackAddr(t),
		logPath:     filepath.Join(workDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log"),
	}
	r.args = []string{
		"--kubeconfig", kubeconfigPath,
		"--metrics-bind-address", r.metricsAddr,
		// The test scrapes without a token.
		"--metrics-secure=false",
		"--health-probe-bind-address", r.probeAddr,
		"--backup-namespace", operatorNamespace,
		"--leader-elect=" + strconv.FormatBool(leaderElect),
		// Log times to the nanosecond, to read the retries' backoff.
		"--zap-time-encoding=rfc3339nano",
	}
	if metricsSecure() {
		// The test scrapes plain HTTP, without a token.
		r.args = append(r.args, "--metrics-secure=false")
	}
	if leaderElect {
		r.args = append(r.args, "--leader-election-namespace", operatorNamespace,
			"--leader-election-lease-duration="+replicaLease.String(),
			"--leader-election-renew-deadline="+(*replicaLease*2/3).String(),
			"--leader-election-retry-period="+(*replicaLease/5).String())
	}
	replicasMu.Lock()
	allReplicas = append(allReplicas, r)
	replicasMu.Unlock()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("last lines of operator %s's log (%s):\n%s", r.name, r.logPath, tail(r.logPath, 40))
		}
	})
	return r
}

// metricsSecure says whether the operator under test has --metrics-secure
// (metrics over HTTPS by default), per its --help.
var metricsSecure = sync.OnceValue(func() bool {
	out, _ := exec.Command(managerPath, "--help").CombinedOutput()
	return strings.Contains(string(out), "--metrics-secure ")
})

// freeLoopbackAddr is a loopback address with a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// start runs the operator and returns when the process is running (not
// when it is ready: a restarted operator is back from this moment on).
func (r *replica) start(t *testing.T) time.Time {
	t.Helper()
	at, err := r.launch()
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// launch is start for goroutines other than the test's.
func (r *replica) launch() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && !closed(r.exited) {
		return time.Time{}, fmt.Errorf("operator %s is already running", r.name)
	}
	if r.logFile == nil {
		f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return time.Time{}, err
		}
		r.logFile = f
	}
	r.starts++
	_, _ = fmt.Fprintf(r.logFile, "=== chaos: start %d of operator %s at %s\n", r.starts, r.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(managerPath, r.args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = r.logFile, r.logFile
	// Killed with the test binary, should it die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return time.Time{}, fmt.Errorf("starting operator %s: %w", r.name, err)
	}
	started := time.Now()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	return started, nil
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// kill9 kills the operator as the kernel's OOM killer or a node loss
// would: nothing it was doing is finished, nothing is released. It
// returns when the process is gone, with the time of the kill.
func (r *replica) kill9(t *testing.T) time.Time {
	t.Helper()
	at, err := r.kill()
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// kill is kill9 for goroutines other than the test's.
func (r *replica) kill() (time.Time, error) {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil || closed(exited) {
		return time.Time{}, fmt.Errorf("operator %s is not running, cannot kill it", r.name)
	}
	at := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return time.Time{}, fmt.Errorf("killing operator %s: %w", r.name, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("operator %s did not die within %v of SIGKILL", r.name, timeout)
	}
	return at, nil
}

// stop stops the operator cleanly (SIGTERM), then hard if it takes too
// long. Safe to call when it is not running.
func (r *replica) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && !closed(r.exited) {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	if r.logFile != nil {
		_ = r.logFile.Close()
		r.logFile = nil
	}
}

func stopAllReplicas() {
	replicasMu.Lock()
	defer replicasMu.Unlock()
	for _, r := range allReplicas {
		r.stop()
	}
}

// running reports whether the process is alive, and its pid.
func (r *replica) running() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || closed(r.exited) {
		return false, 0
	}
	return true, r.cmd.Process.Pid
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// ready reports whether the operator's readiness probe answers.
func (r *replica) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.probeAddr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// expectReady waits until the operator answers its readiness probe.
func (r *replica) expectReady(t *testing.T) {
	t.Helper()
	NewWithT(t).Eventually(func() error { return r.ready(context.Background()) }).
		WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "operator %s never became ready", r.name)
}

// metrics scrapes the operator's Prometheus endpoint.
func (r *replica) metrics(ctx context.Context) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// sample is one series of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type samples []sample

// sum adds up the series of name that carry every label pair given
// (name, value, name, value...).
func (s samples) sum(name string, labels ...string) float64 {
	total := 0.0
	for _, x := range s {
		if x.name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if x.labels[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if match {
			total += x.value
		}
	}
	return total
}

// parseMetrics reads the Prometheus text exposition format, enough of it
// for the series client_golang writes: name{label="value",...} value.
func parseMetrics(body io.Reader) (samples, error) {
	var out samples
	scanner := bufio.NewScanner(body)
	scanner.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			return nil, fmt.Errorf("metrics line without a value: %q", line)
		}
		value, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		series := line[:cut]
		s := sample{name: series, labels: map[string]string{}, value: value}
		if open := strings.IndexByte(series, '{'); open >= 0 {
			s.name = series[:open]
			if err := parseLabels(strings.TrimSuffix(series[open+1:], "}"), s.labels); err != nil {
				return nil, fmt.Errorf("metrics line %q: %w", line, err)
			}
		}
		out = append(out, s)
	}
	return out, scanner.Err()
}

func parseLabels(text string, into map[string]string) error {
	for text != "" {
		eq := strings.IndexByte(text, '=')
		if eq < 0 || eq+1 >= len(text) || text[eq+1] != '"' {
			return errors.New("malformed labels")
		}
		name := strings.TrimSpace(text[:eq])
		var value strings.Builder
		i := eq + 2
		for ; i < len(text) && text[i] != '"'; i++ {
			if text[i] == '\\' && i+1 < len(text) {
				i++
				switch text[i] {
				case 'n':
					value.WriteByte('\n')
				default:
					value.WriteByte(text[i])
				}
				continue
			}
			value.WriteByte(text[i])
		}
		if i >= len(text) {
			return errors.New("unterminated label value")
		}
		into[name] = value.String()
		text = strings.TrimPrefix(strings.TrimSpace(text[i+1:]), ",")
	}
	return nil
}

// isLeader reports whether the operator holds the Lease, by
// controller-runtime's leader_election_master_status gauge.
func (r *replica) isLeader(ctx context.Context) (bool, error) {
	m, err := r.metrics(ctx)
	if err != nil {
		return false, err
	}
	return m.sum("leader_election_master_status", "name", leaseName) == 1, nil
}

// tail is the end of a log file, for a failure message.
func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	for i, line := range all {
		if len(line) > 400 {
			all[i] = line[:400] + "..."
		}
	}
	return strings.Join(all, "\n")
}
