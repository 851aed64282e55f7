package integration

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/testing/awsfake"
)

var updateExported = flag.Bool("update-exported-metrics", false, "rewrite test/alerts/testdata/exported-metrics.txt from the running operator's /metrics")

// exportedMetricsFile is every metric family the operator exports, with its
// type, as scraped from the real binary: test/alerts (its own module, with
// Prometheus's rule engine and PromQL parser) checks the alert rules and
// the dashboard against it.
const exportedMetricsFile = "test/alerts/testdata/exported-metrics.txt"

// The metrics are served over HTTPS to authorized scrapers only: the real
// binary, as its service account bound to config/rbac, asks envtest's
// kube-apiserver to review each bearer token (TokenReview) and the right to
// get /metrics (SubjectAccessReview). The tokens are real service account
// tokens (TokenRequest), which envtest's API server signs and verifies
// with the key pair envtest makes for it.
func TestMetricsOnlyToAuthorizedScrapers(t *testing.T) {
	fake := startAccessEntryCluster(t, awsfake.ModeAPIAndConfigMap)
	seedCreator(t, fake)
	applyConfig(t, "config/rbac")
	create(t, accessEntryMappings()...)
	bin := buildManager(t)
	addr, stop := startManagerBinary(t, bin, fake)
	url := "https://" + addr + "/metrics"

	const ns = "metrics-scrapers"
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	t.Cleanup(func() { _ = k.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	prometheus := serviceAccountToken(t, ns, "prometheus")
	other := serviceAccountToken(t, ns, "someone-else")
	// Bound to the ClusterRole as shipped (applied above from config/rbac).
	create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "aws-auth-guardian-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
	})
	t.Cleanup(func() {
		_ = k.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-prometheus-metrics-reader"}})
	})

	// The server's certificate is self-signed, made at start: nothing to
	// verify it with (README, "Metrics").
	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	g := NewWithT(t)
	// Until the server listens, a request fails; the bound is the binary's
	// start.
	g.Eventually(func() error { _, _, err := get(https, url, ""); return err }).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())

	t.Run("no token: 401", func(t *testing.T) {
		code, _, err := get(https, url, "")
		g := NewWithT(t)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusUnauthorized))
	})
	t.Run("a token the API server did not issue: refused", func(t *testing.T) {
		// The TokenReview says "invalid bearer token" as an error, which
		// controller-runtime's filter answers with 500 rather than 401.
		code, body, err := get(https, url, "not-a-token")
		g := NewWithT(t)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(BeElementOf(http.StatusUnauthorized, http.StatusInternalServerError))
		g.Expect(body).NotTo(ContainSubstring("aws_auth_guardian_"))
	})
	t.Run("a service account without the metrics-reader role: 403", func(t *testing.T) {
		code, body, err := get(https, url, other)
		g := NewWithT(t)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusForbidden))
		g.Expect(body).To(ContainSubstring("Authorization denied for user system:serviceaccount:metrics-scrapers:someone-else"))
	})
	t.Run("plain HTTP is not served", func(t *testing.T) {
		// Go's TLS server answers 400 and closes the connection, which
		// the client may see as a reset first.
		code, body, err := get(&http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/metrics", prometheus)
		if err == nil && code != http.StatusBadRequest {
			t.Errorf("plain HTTP to the metrics port: %d, want 400 or a closed connection\n%s", code, body)
		}
	})
	t.Run("a service account bound to the metrics-reader role: 200 and the operator's metrics", func(t *testing.T) {
		g := NewWithT(t)
		// The operator converged: every family it exports is there, the
		// access entry target's too.
		g.Eventually(func(g Gomega) { expectTranslated(g, fake) }).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		var body string
		g.Eventually(func(g Gomega) {
			code, b, err := get(https, url, prometheus)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			body = b
			g.Expect(body).To(ContainSubstring("aws_auth_guardian_aws_auth_present 1\n"))
			g.Expect(body).To(MatchRegexp(`aws_auth_guardian_eks_api_calls_total\{operation="ListAccessEntries",result="ok"\} [1-9]`))
			g.Expect(body).To(ContainSubstring(`aws_auth_guardian_access_entries{state="managed"} 3`))
		}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		expectExportedMetricsFile(t, https, url, prometheus)
	})

	// The mode of make run, the bench and the chaos tests: anyone who
	// reaches the port reads the metrics.
	t.Run("with --metrics-secure=false: plain HTTP, no token", func(t *testing.T) {
		stop()
		addr, _ := startManagerBinary(t, bin, fake, "--metrics-secure=false")
		plain := &http.Client{Timeout: 10 * time.Second}
		NewWithT(t).Eventually(func(g Gomega) {
			code, body, err := get(plain, "http://"+addr+"/metrics", "")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring("aws_auth_guardian_aws_auth_present 1\n"))
		}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
	})
}

// accessEntryMappings are the mappings of expectTranslated.
func accessEntryMappings() []client.Object {
	return []client.Object{
		mapping("admins", withARN(adminsAsMapped), withUsername("admin"), withGroups("system:masters", "ops")),
		mapping("nodes", withARN(nodesRole), withUsername("system:node:{{EC2PrivateDNSName}}"), withGroups("system:bootstrappers", "system:nodes")),
		mapping("alice", withARN(aliceUser), withUsername("alice"), withGroups("dev-team")),
	}
}

// expectExportedMetricsFile holds exportedMetricsFile to what the operator
// serves once converged (-update-exported-metrics rewrites it). Families
// that appear only later (a counter of events never seen) are exported at
// 0 from the start, so the set is stable; Eventually covers a scrape taken
// while a gauge vector is being refilled.
func expectExportedMetricsFile(t *testing.T, c *http.Client, url, token string) {
	t.Helper()
	path := filepath.Join(repoRoot, exportedMetricsFile)
	g := NewWithT(t)
	var served string
	check := func(g Gomega) {
		code, body, err := get(c, url, token)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusOK))
		served = exportedFamilies(g, body)
		if *updateExported {
			return
		}
		want, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(served).To(Equal(string(want)), "%s is not what the operator exports: run `go test ./test/integration -run TestMetricsOnlyToAuthorizedScrapers -update-exported-metrics` and review the diff", exportedMetricsFile)
	}
	g.Eventually(check).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	if *updateExported {
		g.Expect(os.WriteFile(path, []byte(served), 0o644)).To(Succeed())
	}
}

// exportedFamilies is the file's text for a scrape: one "name type" line
// per family, sorted.
func exportedFamilies(g Gomega, body string) string {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	var lines []string
	for name, f := range families {
		if strings.HasPrefix(name, "go_") && !goRuntimeKept(name) {
			continue
		}
		lines = append(lines, name+" "+strings.ToLower(f.GetType().String()))
	}
	slices.Sort(lines)
	return "# Every metric family the operator exports, as scraped from it with the access entry target on.\n" +
		"# Written by test/integration (TestMetricsOnlyToAuthorizedScrapers -update-exported-metrics); read by test/alerts.\n" +
		strings.Join(lines, "\n") + "\n"
}

// goRuntimeKept: of the Go runtime's families, which follow the Go release
// (GODEBUG settings, GC classes), only the long-standing ones are listed,
// so that a Go upgrade alone does not change the file.
func goRuntimeKept(name string) bool {
	return name == "go_goroutines" || name == "go_threads" || name == "go_info" || name == "go_gc_duration_seconds" ||
		strings.HasPrefix(name, "go_memstats_")
}

// get sends one GET with the bearer token (none when empty).
func get(c *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// serviceAccountToken creates the service account ns/name and a token for
// it, as a kubelet asks for a pod's (TokenRequest).
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// buildManager builds bin/manager as make build does, into the test's
// temporary folder.
func buildManager(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "manager")
	// A cold build cache compiles all of client-go and controller-runtime.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startManagerBinary runs bin/manager as built by go build, as the
// operator's service account (config/rbac must be applied), with the
// access entry target pointed at fake, until the test ends. It returns
// the metrics address, and stop, which kills it.
func startManagerBinary(t *testing.T, bin string, fake *awsfake.Server, args ...string) (string, func()) {
	t.Helper()
	user, err := testEnv.AddUser(envtest.User{Name: operatorUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--kubeconfig", kubeconfigPath,
		"--metrics-bind-address", addr,
		"--health-probe-bind-address", "127.0.0.1:0",
		"--backup-namespace", operatorNamespace,
		"--eks-cluster-name", eksCluster,
		"--access-entry-resync", accessEntryResync.String(),
		"--access-entry-full-resync", (10 * accessEntryResync).String(),
	}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_REGION="+awsfake.DefaultRegion,
		"AWS_ENDPOINT_URL_EKS="+fake.URL(),
		"AWS_ENDPOINT_URL_IAM="+fake.URL(),
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
	)
	logPath := filepath.Join(dir, "manager.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(func() {
		cancel()
		_ = cmd.Wait()
		_ = log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("the operator logged:\n%s", out)
		}
	})
	t.Cleanup(stop)
	return addr, stop
}

// freeLoopbackAddr is a loopback address with a port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
