package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/adopt"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

const importDescription = `
Reads the aws-auth ConfigMap, from the cluster (kube-system/aws-auth, found
through --kubeconfig, else KUBECONFIG or ~/.kube/config) or from a YAML file
holding it, and prints one IAMIdentityMapping per entry the EKS
authenticator serves, ready to commit.

Entries that cannot become a mapping (sso matchers, userid, invalid YAML,
a role ARN with a path the authenticator never matches) and duplicates the
authenticator never serves are listed on stderr. Exit code 1 when any entry
cannot become a mapping: a person must decide on each before the operator
takes over aws-auth. Exit code 2 when aws-auth cannot be read.`

// clusterTimeout bounds the one read from the cluster.
const clusterTimeout = 30 * time.Second

func newImportCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var kubeconfig, file string
	cmd := &cobra.Command{
		Use:                   "import [--kubeconfig PATH | --file PATH|-]",
		Short:                 "Print an existing aws-auth as IAMIdentityMapping manifests",
		Long:                  strings.TrimSpace(importDescription),
		Args:                  noArgs,
		GroupID:               groupOffline,
		DisableFlagsInUseLine: true, // the synopsis names them
		RunE: func(*cobra.Command, []string) error {
			if file != "" && kubeconfig != "" {
				return errors.New("give --file or --kubeconfig, not both")
			}
			return exitWith(runImport(kubeconfig, file, stdin, stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "Read aws-auth from the cluster of the kubeconfig at this `path` (default: KUBECONFIG, then ~/.kube/config, then in-cluster).")
	cmd.Flags().StringVar(&file, "file", "", "Read the aws-auth ConfigMap from this YAML `path` instead of the cluster; - reads stdin.")
	return cmd
}

func runImport(kubeconfig, file string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cm *corev1.ConfigMap
	var err error
	if file != "" {
		cm, err = configMapFromFile(file, stdin)
	} else {
		cm, err = configMapFromCluster(kubeconfig)
	}
	if err != nil {
		say(stderr, "import: %v", err)
		return exitBadInput
	}

	adoption := adopt.FromData(cm.Data)
	var out bytes.Buffer
	for i, m := range adoption.Mappings {
		doc, err := yaml.Marshal(manifestOf(m))
		if err != nil {
			say(stderr, "import: encoding %s: %v", m.Name, err)
			return exitBadInput
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
	}
	if code := writeOutput("import", stdout, stderr, out.Bytes()); code != exitOK {
		return code
	}
	say(stderr, "import: %d IAMIdentityMappings written", len(adoption.Mappings))
	printList(stderr, adoption.Shadowed,
		"import: left out, because the authenticator never serves them (a later entry for the same ARN wins), so dropping them changes nothing:")
	if len(adoption.Unrepresentable) == 0 {
		return exitOK
	}
	printList(stderr, adoption.Unrepresentable,
		"import: cannot become IAMIdentityMappings; decide on each before aws-auth-guardian takes over aws-auth, which would otherwise drop them:")
	return exitFindings
}

// manifest is a mapping as a person commits it: no status, no
// server-set metadata, no empty fields.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec iamv1alpha1.IAMIdentityMappingSpec `json:"spec"`
}

func manifestOf(m iamv1alpha1.IAMIdentityMapping) manifest {
	out := manifest{APIVersion: m.APIVersion, Kind: m.Kind, Spec: m.Spec}
	out.Metadata.Name, out.Metadata.Labels = m.Name, m.Labels
	return out
}

func printList(w io.Writer, items []string, heading string) {
	if len(items) == 0 {
		return
	}
	say(w, "%s", heading)
	for _, item := range items {
		say(w, "  - %s", item)
	}
}

func configMapFromFile(path string, stdin io.Reader) (*corev1.ConfigMap, error) {
	docs, err := readDocuments(path, stdin)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s holds %d objects; import reads exactly one, the aws-auth ConfigMap", path, len(docs))
	}
	doc := docs[0]
	if doc.kind != "ConfigMap" || doc.apiVersion != "v1" {
		return nil, fmt.Errorf("%s, not a ConfigMap (apiVersion v1)", doc.describe())
	}
	cm := &corev1.ConfigMap{}
	// Not strict: a ConfigMap saved from a cluster carries fields of newer
	// servers that do not matter here.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(doc.json, cm); err != nil {
		return nil, fmt.Errorf("%s is not a valid ConfigMap: %w", doc.source, err)
	}
	return cm, nil
}

func configMapFromCluster(kubeconfig string) (*corev1.ConfigMap, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cannot find the cluster: %w", err)
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the cluster at %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	key := managed.AWSAuthKey
	cm, err := client.ConfigMaps(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("the cluster at %s has no ConfigMap %s: there is nothing to import", cfg.Host, key)
	case err != nil:
		return nil, fmt.Errorf("cannot read %s from the cluster at %s: %w", key, cfg.Host, err)
	}
	return cm, nil
}
