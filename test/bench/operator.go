package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
	name := mode
	if b.eks != nil {
		name += "-eks"
	}
	op := &operator{
		mode:       mode,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		readyURL:   fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort),
		logPath:    filepath.Join(b.opts.workdir, fmt.Sprintf("operator-%d-%s.log", b.operators, name)),
		exited:     make(chan struct{}),
	}
	logFile, err := os.Create(op.logPath)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig", b.kubeconfig,
		"--configmap-mode", mode,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		// The bench scrapes without a token.
		"--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probePort),
		"--backup-namespace", operatorNamespace,
	}
	if b.metricsSecure {
		args = append(args, "--metrics-secure=false")
	}
	if b.eks != nil {
		args = append(append(args, eksArgs...), b.eksExtra...)
	}
	op.cmd = exec.Command(filepath.Join(b.opts.root, "bin", "manager"), args...)
	if b.eks != nil {
		op.cmd.Env = eksEnv(b.eks.URL())
	}
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
			return fmt.Errorf("bin/manager exited at start (%w); see %s", op.exitErr, op.logPath)
		default:
		}
		if httpOK(op.readyURL) && httpOK(op.metricsURL) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bin/manager did not become ready in 60s; see %s", op.logPath)
}

// hasFlag says whether bin/manager has a flag, per its --help.
func hasFlag(root, name string) bool {
	out, _ := exec.Command(filepath.Join(root, "bin", "manager"), "--help").CombinedOutput()
	return strings.Contains(string(out), "--"+name+" ")
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
