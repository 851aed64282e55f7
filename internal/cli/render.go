package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	iamv1alpha1 "github.com/aws-auth-guardian/aws-auth-guardian/api/v1alpha1"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/awsauth"
	"github.com/aws-auth-guardian/aws-auth-guardian/internal/managed"
)

const renderDescription = `
Reads IAMIdentityMapping manifests (several documents per file, or a List)
and prints the aws-auth ConfigMap the operator would write for them. The
mappings are checked as the operator checks them; of two that claim the same
identity, the older wins, and manifests without a creationTimestamp count as
equally old, so the first by name wins.

Any invalid mapping or conflict is printed to stderr as "<name>: <reason>"
and nothing is printed to stdout: exit code 1. Exit code 2 when the input
cannot be read or holds objects of another kind.`

func newRenderCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var files []string
	var mode string
	cmd := &cobra.Command{
		Use:                   "render --file PATH|- [--file PATH ...] [--configmap-mode immutable|mutable]",
		Short:                 "Print the aws-auth the operator would write for IAMIdentityMapping manifests",
		Long:                  strings.TrimSpace(renderDescription),
		Args:                  noArgs,
		GroupID:               groupOffline,
		DisableFlagsInUseLine: true, // the synopsis names them
		RunE: func(*cobra.Command, []string) error {
			switch {
			case len(files) == 0:
				return errors.New("give at least one --file")
			case mode != string(managed.Immutable) && mode != string(managed.Mutable):
				return fmt.Errorf("--configmap-mode must be %q or %q, not %q", managed.Immutable, managed.Mutable, mode)
			case countStdin(files) > 1:
				return errors.New("--file - (stdin) may be given only once")
			}
			return exitWith(runRender(files, managed.Mode(mode), stdin, stdout, stderr))
		},
	}
	// An array, not a slice: a slice flag splits its value at commas, and
	// a file name may hold one.
	cmd.Flags().StringArrayVar(&files, "file", nil, "Read IAMIdentityMappings from this YAML `path`; - reads stdin. May be given several times.")
	cmd.Flags().StringVar(&mode, "configmap-mode", string(managed.Immutable), "Render aws-auth as the operator writes it in this `mode`: immutable or mutable.")
	return cmd
}

func runRender(files []string, mode managed.Mode, stdin io.Reader, stdout, stderr io.Writer) int {
	mappings, problems, err := readMappings(files, stdin)
	if err != nil {
		say(stderr, "render: %v", err)
		return exitBadInput
	}
	if len(mappings) == 0 && len(problems) == 0 {
		say(stderr, "render: the input holds no IAMIdentityMapping; the operator never writes an empty aws-auth over one that maps someone")
		return exitBadInput
	}
	inputs := make([]awsauth.Mapping, len(mappings))
	for i := range mappings {
		inputs[i] = managed.MappingInput(&mappings[i])
	}
	resolution := awsauth.Resolve(inputs)
	problems = append(problems, resolutionProblems(resolution)...)
	if len(problems) > 0 {
		slices.Sort(problems) // by name, as each starts with one
		for _, p := range problems {
			say(stderr, "%s", p)
		}
		return exitFindings
	}

	rendered, err := awsauth.Render(resolution.Entries)
	if err != nil {
		say(stderr, "aws-auth: %v", err)
		return exitFindings
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: managed.AWSAuthKey.Namespace, Name: managed.AWSAuthKey.Name},
	}
	managed.Set(cm, rendered, mode)
	out, err := yaml.Marshal(cm)
	if err != nil {
		say(stderr, "render: encoding aws-auth: %v", err)
		return exitBadInput
	}
	return writeOutput("render", stdout, stderr, out)
}

// readMappings decodes every IAMIdentityMapping of the files. A mapping
// that does not decode (a misspelt or mistyped field, a name used twice)
// is a problem of that mapping, reported as "<name>: <reason>"; an input
// that is not a set of named IAMIdentityMappings is an error.
func readMappings(files []string, stdin io.Reader) ([]iamv1alpha1.IAMIdentityMapping, []string, error) {
	var mappings []iamv1alpha1.IAMIdentityMapping
	var problems []string
	seen := map[string]string{}
	for _, path := range files {
		docs, err := readDocuments(path, stdin)
		if err != nil {
			return nil, nil, err
		}
		for _, doc := range docs {
			if doc.kind != "IAMIdentityMapping" || doc.apiVersion != iamv1alpha1.GroupVersion.String() {
				return nil, nil, fmt.Errorf("%s, not an IAMIdentityMapping (apiVersion %s)", doc.describe(), iamv1alpha1.GroupVersion)
			}
			var m iamv1alpha1.IAMIdentityMapping
			// Decoded as the API server decodes: field names match case,
			// and an unknown or repeated field is refused, so a typo like
			// usernme cannot silently drop a field.
			strictErrs, err := sigsjson.UnmarshalStrict(doc.json, &m)
			if err := errors.Join(append([]error{err}, strictErrs...)...); err != nil {
				if m.Name == "" {
					return nil, nil, fmt.Errorf("%s: %w", doc.source, err)
				}
				problems = append(problems, fmt.Sprintf("%s: %v", m.Name, strings.ReplaceAll(err.Error(), "\n", "; ")))
				continue
			}
			switch first, dup := seen[m.Name]; {
			case m.Name == "":
				return nil, nil, fmt.Errorf("%s: the IAMIdentityMapping has no metadata.name", doc.source)
			case dup:
				problems = append(problems, fmt.Sprintf("%s: defined twice, in %s and in %s; the second would overwrite the first", m.Name, first, doc.source))
				continue
			}
			seen[m.Name] = doc.source
			mappings = append(mappings, m)
		}
	}
	return mappings, problems, nil
}

// resolutionProblems says, per mapping the operator would not render, why.
func resolutionProblems(res awsauth.Resolution) []string {
	outcomes := res.Outcomes
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(outcomes)) {
		switch out := outcomes[name]; {
		case out.Err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", name, out.Err))
		case out.ShadowedBy != "":
			problems = append(problems, fmt.Sprintf("%s: maps %s, as %s does, which wins (the oldest, then the first by name); the operator would leave this one out", name, out.Entry.Identity, out.ShadowedBy))
		}
	}
	return problems
}

func countStdin(files []string) int {
	n := 0
	for _, f := range files {
		if f == "-" {
			n++
		}
	}
	return n
}
