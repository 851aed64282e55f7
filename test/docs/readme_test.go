// Package docs holds the README to the Makefile and to config/iam: a person
// who follows the README runs targets that exist, described as `make help`
// describes them, and copies the IAM policy that is shipped.
package docs

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// targets are the Makefile's targets, from its rule lines.
func targets(t *testing.T) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z][a-zA-Z0-9_-]*):`).FindAllStringSubmatch(read(t, "../../Makefile"), -1) {
		found[m[1]] = true
	}
	return found
}

func TestEveryMakeTargetTheDocsNameExists(t *testing.T) {
	have := targets(t)
	if !have["test"] || !have["help"] {
		t.Fatalf("found targets %v: the Makefile was not read right", have)
	}
	docs := []string{"../../README.md", "../../docs/design.md", "../../docs/benchmarks.md", "../../docs/chaos.md"}
	named := regexp.MustCompile("(?:`|\\n|^)make ((?:[a-z][a-z0-9-]* ?)+)")
	for _, doc := range docs {
		for _, m := range named.FindAllStringSubmatch(read(t, doc), -1) {
			for _, target := range strings.Fields(m[1]) {
				if !have[target] {
					t.Errorf("%s names `make %s`, which the Makefile does not have", doc, target)
				}
			}
		}
	}
}

// helpOf is what `make help` prints for each target.
func helpOf(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "help")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	help := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if target, text, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(line, "  ") {
			help[target] = strings.TrimSpace(text)
		}
	}
	return help
}

// TestREADMEDescribesTargetsAsMakeHelpDoes: the README shows the commands
// a person runs most with the words (and the durations) of `make help`.
func TestREADMEDescribesTargetsAsMakeHelpDoes(t *testing.T) {
	help := helpOf(t)
	readme := read(t, "../../README.md")
	for _, target := range []string{"run", "test", "bench", "chaos", "build"} {
		text, ok := help[target]
		if !ok {
			t.Errorf("make help does not describe %s", target)
			continue
		}
		line := regexp.MustCompile(`(?m)^make ` + target + ` +# (.*)$`).FindStringSubmatch(readme)
		if line == nil {
			t.Errorf("the README has no line `make %s   # ...` (make help says %q)", target, text)
			continue
		}
		if line[1] != text {
			t.Errorf("the README says of make %s:\n  %s\nmake help says:\n  %s", target, line[1], text)
		}
	}
}

// TestREADMEShowsTheIAMPolicyAsShipped: the policy the README shows is
// config/iam/policy.json itself, so that a person who copies it from the
// page gets the one test/iam holds to the operator's calls.
func TestREADMEShowsTheIAMPolicyAsShipped(t *testing.T) {
	policy := strings.TrimSpace(read(t, "../../config/iam/policy.json"))
	readme := read(t, "../../README.md")
	var shown []string
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllStringSubmatch(readme, -1) {
		if strings.Contains(m[1], `"Statement"`) {
			shown = append(shown, strings.TrimSpace(m[1]))
		}
	}
	if len(shown) != 1 {
		t.Fatalf("the README shows %d IAM policies, want 1 (config/iam/policy.json)", len(shown))
	}
	if shown[0] != policy {
		t.Errorf("the README's IAM policy differs from config/iam/policy.json: copy the file into the README")
	}
}
