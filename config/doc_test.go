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

// TestDocExample: every JSON example of doc/configuration.md is a valid
// configuration; the first shows TLS.
func TestDocExample(t *testing.T) {
	doc := readDoc(t)
	var examples []*Config
	for rest := doc; ; {
		var ok bool
		if _, rest, ok = strings.Cut(rest, "```json\n"); !ok {
			break
		}
		var example string
		example, rest, _ = strings.Cut(rest, "```")
		examples = append(examples, mustParse(t, example))
	}
	if len(examples) == 0 {
		t.Fatalf("%s: no JSON example", docPath)
	}
	c := examples[0]
	if !c.Uplink.TLS || !c.Listen.TLS || c.Listen.ClientCAFile == "" {
		t.Errorf("the example does not show uplink TLS and listen TLS with client certificates: %+v", *c)
	}
	var candidates, sentinel bool
	for _, c := range examples[1:] {
		candidates = candidates || len(c.Uplink.Candidates) > 0
		sentinel = sentinel || c.Uplink.Sentinel.Enabled()
	}
	if !candidates || !sentinel {
		t.Errorf("no example with uplink.candidates (%v) or uplink.sentinel (%v)", candidates, sentinel)
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
