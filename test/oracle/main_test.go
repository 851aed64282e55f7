package oracle

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"sigs.k8s.io/aws-iam-authenticator/pkg/metrics"
)

// TestMain silences the authenticator, which logs a warning for every
// broken map the tests feed it on purpose, and cuts the process off from
// AWS: the authenticator server's STS calls go to fakeSTS, its AWS SDK
// clients (IMDS, EC2) to loopback, and any request fakeSTS did not expect
// fails the run.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	if os.Getenv("ORACLE_LOG") != "" {
		logrus.SetOutput(os.Stderr)
	}
	logrus.AddHook(theDenials)
	// As the authenticator's server command does before server.New; the
	// mapper's watch loop counts failures in them.
	metrics.InitMetrics(prometheus.NewRegistry())

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		theSTS.mu.Lock()
		theSTS.refused = append(theSTS.refused, "AWS SDK "+r.Method+" "+r.URL.String())
		theSTS.mu.Unlock()
		http.Error(w, "oracle harness: no AWS", http.StatusForbidden)
	}))
	ec2 := fakeEC2()
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":   "true", // the server asks IMDS for its region
		"AWS_ENDPOINT_URL":            refused.URL,
		"AWS_ENDPOINT_URL_EC2":        ec2.URL, // {{EC2PrivateDNSName}}
		"AWS_REGION":                  "us-east-1",
		"AWS_MAX_ATTEMPTS":            "1",
		"AWS_ACCESS_KEY_ID":           "AKIAORACLESERVER0000",
		"AWS_SECRET_ACCESS_KEY":       "oracle-server-secret",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"HTTPS_PROXY":                 refused.URL, // for any client that ignores the above
		"HTTP_PROXY":                  refused.URL,
	} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "NO_PROXY", "no_proxy", "KUBECONFIG"} {
		os.Unsetenv(k)
	}
	// The verifier's http.Client has no Transport of its own.
	http.DefaultTransport = theSTS

	code := m.Run()
	ec2.Close()
	refused.Close()
	if r := theSTS.refusedRequests(); len(r) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "the authenticator tried to reach beyond the harness:\n%v\n", r)
		code = 1
	}
	os.Exit(code)
}
