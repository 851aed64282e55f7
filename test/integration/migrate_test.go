package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/aws-auth-guardian/aws-auth-guardian/internal/cli"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

// manager migrate reads aws-auth from a real API server through a
// kubeconfig, as a person runs it against a cluster.
func TestMigrateReadsAWSAuthFromTheCluster(t *testing.T) {
	resetCluster(t)
	user, err := testEnv.AddUser(envtest.User{Name: "migrate-reader", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name},
		Data: map[string]string{"mapRoles": "- rolearn: " + nodesRole + "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n",
			"mapAccounts": "- \"444455556666\"\n"},
	})
	t.Cleanup(func() { resetCluster(t) })

	var stdout, stderr bytes.Buffer
	code := cli.Execute([]string{"migrate", "--kubeconfig", path}, strings.NewReader(""), &stdout, &stderr, nil)
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (the account cannot move); stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"role/nodes", "EC2_LINUX", "account 444455556666", "API mode: blocked: 1 identity cannot become access entries"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not mention %q:\n%s", want, stdout.String())
		}
	}
}
