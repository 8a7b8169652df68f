package packaging

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/camgate/camgate/agent"
)

func readDefaultConfig(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("camgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The packaged config must start the daemon, and must say exactly what camgate does with no
// file at all: a package upgrade that changes a default changes it for everyone.
func TestPackagedConfigIsTheBuiltInDefaults(t *testing.T) {
	cfg, err := agent.ParseConfig(readDefaultConfig(t))
	if err != nil {
		t.Fatalf("packaged camgate.yaml does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("packaged camgate.yaml does not validate: %v", err)
	}
	if want := agent.DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("packaged camgate.yaml differs from agent.DefaultConfig():\n got %+v\nwant %+v", cfg, want)
	}
}

// The commented examples are what users uncomment first: they must be valid as written.
func TestPackagedConfigExamplesLoad(t *testing.T) {
	var out bytes.Buffer
	for line := range strings.Lines(string(readDefaultConfig(t))) {
		switch {
		case strings.HasPrefix(line, "cameras: []"):
			line = "cameras:\n"
		case strings.HasPrefix(line, "  events: []"):
			line = "  events:\n"
		case strings.HasPrefix(line, "#  "):
			line = line[1:]
		}
		out.WriteString(line)
	}
	cfg, err := agent.ParseConfig(out.Bytes())
	if err != nil {
		t.Fatalf("camgate.yaml with its examples uncommented does not load: %v\n%s", err, out.String())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("camgate.yaml with its examples uncommented does not validate: %v", err)
	}
	if len(cfg.Cameras) != 1 || cfg.Cameras[0].ID != "porch" {
		t.Errorf("cameras example: got %+v, want the one camera porch", cfg.Cameras)
	}
	if len(cfg.Flussonic.Events) != 1 || cfg.Flussonic.Events[0].Format != agent.FormatEventSink {
		t.Errorf("flussonic.events example: got %+v, want one event_sink sink", cfg.Flussonic.Events)
	}
}

// specConfigCopy is SPEC.md §2's yaml block, kept here because CI checks out this repository alone,
// without the shared directory that holds SPEC.md.
const specConfigCopy = "testdata/spec-config.yaml"

// specConfigBlock is the yaml block of SPEC.md's section 2.
var specConfigBlock = regexp.MustCompile("(?s)## 2\\. Config file.*?```yaml\n(.*?)```")

// The copy in testdata is SPEC §2's yaml block as it is now. SPEC.md is beside the checkout only
// on the developers' machines, so only there can the copy be compared; CI relies on the copy.
func TestSpecConfigCopyIsCurrent(t *testing.T) {
	copied, err := os.ReadFile(specConfigCopy)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../../shared/SPEC.md")
	if err != nil {
		t.Logf("SPEC.md is not beside the checkout, so %s is trusted as it is: %v", specConfigCopy, err)
		return
	}
	block := specConfigBlock.FindSubmatch(spec)
	if block == nil {
		t.Fatal("SPEC.md has no yaml block in section 2")
	}
	if !bytes.Equal(block[1], copied) {
		t.Errorf("SPEC.md §2 changed: copy its yaml block to packaging/%s (and update camgate.yaml)", specConfigCopy)
	}
}

// Every key of SPEC.md §2 is spelled out in the packaged file (with the examples uncommented
// for the list items), so users find each setting where the contract documents it.
func TestPackagedConfigHasEverySpecKey(t *testing.T) {
	spec, err := os.ReadFile(specConfigCopy)
	if err != nil {
		t.Fatal(err)
	}
	want := keyPaths(t, spec)
	if len(want) == 0 {
		t.Fatalf("%s names no keys", specConfigCopy)
	}

	var uncommented bytes.Buffer
	for line := range strings.Lines(string(readDefaultConfig(t))) {
		line = strings.Replace(line, "cameras: []", "cameras:", 1)
		line = strings.Replace(line, "events: []", "events:", 1)
		if strings.HasPrefix(line, "#  ") {
			line = line[1:]
		}
		uncommented.WriteString(line)
	}
	got := keyPaths(t, uncommented.Bytes())
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("SPEC key %s is missing from packaging/camgate.yaml", k)
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("packaging/camgate.yaml has %s, which SPEC §2 does not name", k)
		}
	}
}

// keyPaths lists the dotted paths of every mapping key in a YAML document; list items add "[]".
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		t.Fatalf("parse: %v", err)
	}
	var paths []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if prefix != "" {
					p = prefix + "." + p
				}
				if !slices.Contains(paths, p) {
					paths = append(paths, p)
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, prefix+"[]")
			}
		}
	}
	walk(&root, "")
	return paths
}
