package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// document is one object of an input, as JSON.
type document struct {
	// source says where it came from, for messages: "a.yaml, document 2".
	source     string
	apiVersion string
	kind       string
	json       []byte
}

// readDocuments reads every object of a YAML (or JSON) file, "-" meaning
// stdin. A file may hold several documents; the items of a List (kind
// List, or any kind ending in List) count as documents of their own.
func readDocuments(path string, stdin io.Reader) ([]document, error) {
	name, in := path, stdin
	if path == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs []document
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", name, err)
		}
		source := fmt.Sprintf("%s, document %d", name, n)
		asJSON, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s is not valid YAML: %w", source, err)
		}
		if isEmpty(asJSON) {
			continue // only comments, or nothing between two ---
		}
		expanded, err := expandList(source, asJSON)
		if err != nil {
			return nil, err
		}
		docs = append(docs, expanded...)
	}
}

func isEmpty(asJSON []byte) bool {
	s := string(bytes.TrimSpace(asJSON))
	return s == "null" || s == ""
}

// expandList reads the kind of one object and, for a list, the kind of
// each of its items.
func expandList(source string, asJSON []byte) ([]document, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(asJSON, &head); err != nil || head.Kind == "" {
		return nil, fmt.Errorf("%s is not a Kubernetes object: it has no kind", source)
	}
	if !strings.HasSuffix(head.Kind, "List") {
		return []document{{source: source, apiVersion: head.APIVersion, kind: head.Kind, json: asJSON}}, nil
	}
	var docs []document
	for i, item := range head.Items {
		expanded, err := expandList(fmt.Sprintf("%s, item %d", source, i+1), item)
		if err != nil {
			return nil, err
		}
		docs = append(docs, expanded...)
	}
	return docs, nil
}

// describe names a document's kind for an error message.
func (d document) describe() string {
	return fmt.Sprintf("%s holds a %s (apiVersion %q)", d.source, d.kind, d.apiVersion)
}
