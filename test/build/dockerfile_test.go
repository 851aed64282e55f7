// Package build checks that the image can be built from what the
// Dockerfile copies. There is no Docker engine here, so the check is on
// the files: every package the manager binary imports from this module
// must be inside the build context that .dockerignore leaves.
package build

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/aws-auth-guardian/aws-auth-guardian"

func TestDockerBuildContextHoldsEveryPackageTheBinaryImports(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "\nCOPY . .\n") {
		t.Fatal("the Dockerfile must COPY . . (copying folders by name breaks when one is added) and rely on .dockerignore")
	}
	ignored := dockerignore(t, filepath.Join(root, ".dockerignore"))

	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,Module,EmbedFiles", ".")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	decoder := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for decoder.More() {
		var pkg struct {
			ImportPath, Dir string
			Module          *struct{ Path string }
			EmbedFiles      []string
		}
		if err := decoder.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || pkg.Module.Path != module {
			continue
		}
		rel, err := filepath.Rel(root, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, pattern := range ignored {
			if rel == pattern || strings.HasPrefix(rel+"/", pattern+"/") {
				t.Errorf("the binary imports %s, but .dockerignore leaves %s out of the image build", pkg.ImportPath, rel)
			}
			// Files the binary embeds (go:embed) must be there too.
			for _, file := range pkg.EmbedFiles {
				if path := filepath.Join(rel, file); strings.HasPrefix(path+"/", pattern+"/") {
					t.Errorf("%s embeds %s, but .dockerignore leaves it out of the image build", pkg.ImportPath, path)
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages of this module found; go list output was not what this test expects", checked)
	}
	for _, needed := range []string{"go.mod", "go.sum", "main.go"} {
		for _, pattern := range ignored {
			if needed == pattern {
				t.Errorf(".dockerignore leaves %s out of the image build", needed)
			}
		}
	}
}

// dockerignore reads the folder and file names .dockerignore leaves out.
// It understands the plain entries this project uses; a pattern with
// wildcards or an exception would need more, so it fails on one.
func dockerignore(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var patterns []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*.") && !strings.Contains(line[1:], "*"):
			continue // a file suffix, such as *.md: never a Go package
		case strings.ContainsAny(line, "*?[!"):
			t.Fatalf(".dockerignore pattern %q is beyond this check: extend it", line)
		}
		patterns = append(patterns, strings.Trim(line, "/"))
	}
	return patterns
}
