package config

import (
	"os"
	"strings"
	"testing"
)

const docPath = "../doc/configuration.md"

// TestDocKeys: doc/configuration.md describes every key.
func TestDocKeys(t *testing.T) {
	doc := readDoc(t)
	for _, key := range keys() {
		if !strings.Contains(doc, "| `"+key+"` |") {
			t.Errorf("%s: no row for `%s`", docPath, key)
		}
	}
}

// TestDocExample: the TLS example of doc/configuration.md is a valid
// configuration.
func TestDocExample(t *testing.T) {
	doc := readDoc(t)
	_, rest, ok := strings.Cut(doc, "```json\n")
	if !ok {
		t.Fatalf("%s: no JSON example", docPath)
	}
	example, _, _ := strings.Cut(rest, "```")
	c := mustParse(t, example)
	if !c.Uplink.TLS || !c.Listen.TLS || c.Listen.ClientCAFile == "" {
		t.Errorf("the example does not show uplink TLS and listen TLS with client certificates: %+v", *c)
	}
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
