package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/eksapi"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/migrate"
)

const importDescription = `
Reads the aws-auth ConfigMap, from the cluster (kube-system/aws-auth, found
through --kubeconfig, else KUBECONFIG or ~/.kube/config) or from a YAML file
holding it, and prints one IAMIdentityMapping per entry the EKS
authenticator serves, ready to commit.

With --eks-cluster-name it reads the cluster's access entries instead (with
their access policies; read calls only, with the AWS credentials and region
of the environment, as the operator does) and prints the mapping of each,
checked to translate back to exactly that entry, so that the operator adopts
every entry as it is: a cluster in API mode, whose access lives in its
entries alone, is taken over without a change. An entry the operator made
keeps the name of its mapping (its tag). In API_AND_CONFIG_MAP mode aws-auth
may grant more: import it too, and compare with "manager migrate".

Entries that cannot become a mapping (in aws-auth: sso matchers, userid,
invalid YAML, a role ARN with a path the authenticator never matches; of
access entries: one no mapping reproduces) and duplicates the authenticator
never serves are listed on stderr. Exit code 1 when any entry cannot become
a mapping: a person must decide on each before the operator takes over.
Exit code 2 when aws-auth or the access entries cannot be read, or the
cluster is in CONFIG_MAP mode, where it has no access entries.`

// clusterTimeout bounds the one read from the cluster.
const clusterTimeout = 30 * time.Second

func newImportCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var kubeconfig, file, cluster string
	cmd := &cobra.Command{
		Use:                   "import [--kubeconfig PATH | --file PATH|- | --eks-cluster-name NAME]",
		Short:                 "Print an existing aws-auth as IAMIdentityMapping manifests",
		Long:                  strings.TrimSpace(importDescription),
		Args:                  noArgs,
		GroupID:               groupOffline,
		DisableFlagsInUseLine: true, // the synopsis names them
		RunE: func(*cobra.Command, []string) error {
			if given := slices.DeleteFunc([]string{file, kubeconfig, cluster}, func(s string) bool { return s == "" }); len(given) > 1 {
				return errors.New("give one of --file, --kubeconfig and --eks-cluster-name")
			}
			if cluster != "" {
				return exitWith(runImportEntries(cluster, stdout, stderr))
			}
			return exitWith(runImport(kubeconfig, file, stdin, stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "Read aws-auth from the cluster of the kubeconfig at this `path` (default: KUBECONFIG, then ~/.kube/config, then in-cluster).")
	cmd.Flags().StringVar(&file, "file", "", "Read the aws-auth ConfigMap from this YAML `path` instead of the cluster; - reads stdin.")
	cmd.Flags().StringVar(&cluster, "eks-cluster-name", "", "Read the access entries of this EKS cluster (`name`) instead of aws-auth.")
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

	return printAdoption(adopt.FromData(cm.Data),
		"decide on each before aws-auth-guardian takes over aws-auth, which would otherwise drop them:", stdout, stderr)
}

// runImportEntries imports the access entries of an EKS cluster.
func runImportEntries(clusterName string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	client, err := eksapi.New(ctx, eksapi.Options{ClusterName: clusterName, RateLimit: migrateRateLimit, Registerer: prometheus.NewRegistry()})
	var cluster *migrate.Cluster
	if err == nil {
		cluster, err = readCluster(ctx, client)
	}
	if err != nil {
		say(stderr, "import: %v", err)
		return exitBadInput
	}
	switch cluster.Mode {
	case "API":
	case "API_AND_CONFIG_MAP":
		say(stderr, "import: cluster %s is in API_AND_CONFIG_MAP mode: aws-auth may grant access its access entries do not; import aws-auth too, and compare with manager migrate", clusterName)
	default:
		say(stderr, "import: cluster %s is in %s mode, in which EKS reads aws-auth and no access entries: import aws-auth instead (without --eks-cluster-name)", clusterName, cmp.Or(cluster.Mode, "no access configuration"))
		return exitBadInput
	}
	// The operator never changes an entry it has no mapping for, but it
	// does not keep one either: the cluster's access would then depend on
	// an entry no mapping describes.
	return printAdoption(adopt.FromAccessEntries(cluster.Entries),
		"no mapping will hold them (the operator leaves an entry without its tag alone); decide on each:", stdout, stderr)
}

// printAdoption writes the mappings to stdout, then what was left out, and
// says by the exit code whether a person must decide on something.
func printAdoption(adoption adopt.Adoption, unrepresentable string, stdout, stderr io.Writer) int {
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
		"import: cannot become IAMIdentityMappings; "+unrepresentable)
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
