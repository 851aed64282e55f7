package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws-auth-guardian/aws-auth-guardian/controllers"
)

// The binary carries every policy file of config/policy, so that a file
// added there is checked without touching the embed.
func TestEmbeddedPoliciesAreConfigPolicy(t *testing.T) {
	onDisk, err := filepath.Glob("config/policy/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(policyFiles, "config/policy/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(onDisk, embedded) {
		t.Errorf("embedded %v, config/policy has %v", embedded, onDisk)
	}
	dir, err := fs.Sub(policyFiles, "config/policy")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := controllers.ParseShippedPolicies(dir, controllers.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	fromDisk, err := controllers.ParseShippedPolicies(os.DirFS("config/policy"), controllers.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(shipped) != len(fromDisk) || len(shipped) == 0 {
		t.Errorf("embedded %d policies, config/policy has %d", len(shipped), len(fromDisk))
	}
}
