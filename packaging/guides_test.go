package packaging

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The integrator's guides: the English README and its Russian mirror (issue 16). Both must
// document the config key by key, so an installer reading either finds every SPEC §2 setting.
const (
	englishGuide = "../README.md"
	russianGuide = "../docs/ru/README.md"
)

// fencedBlock is a ``` block of a Markdown file, with its info string (yaml, sh, …).
var fencedBlock = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")

// keyInBackticks is a config key path written in running text: `flussonic.events[].format`,
// `gateway_id`, also `web.listen: ":80"` (the path ends at the first character no key has).
var keyInBackticks = regexp.MustCompile("`([a-z_]+(?:(?:\\[\\])?\\.[a-z_]+)*)[`: ]")

// guideKeys returns the key paths a Markdown guide names: those of its yaml blocks, and those
// written in backticks in its text outside any code block.
func guideKeys(t *testing.T, path string) (inYAML, inText []string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range fencedBlock.FindAllSubmatch(doc, -1) {
		if string(b[1]) == "yaml" {
			inYAML = append(inYAML, keyPaths(t, b[2])...)
		}
	}
	text := fencedBlock.ReplaceAll(doc, nil)
	for _, m := range keyInBackticks.FindAllSubmatch(text, -1) {
		inText = append(inText, string(m[1]))
	}
	return inYAML, inText
}

func specKeys(t *testing.T) []string {
	t.Helper()
	spec, err := os.ReadFile(specConfigCopy)
	if err != nil {
		t.Fatal(err)
	}
	keys := keyPaths(t, spec)
	if len(keys) < 60 {
		t.Fatalf("%s names only %d keys: not SPEC §2's block", specConfigCopy, len(keys))
	}
	return keys
}

// Every config key of SPEC §2 appears in both guides: in the English README in its config
// block or its text, in the Russian guide in its text (it explains the config key by key; a
// key only in an example block would go unexplained).
func TestGuidesNameEverySpecKey(t *testing.T) {
	want := specKeys(t)

	yamlEN, textEN := guideKeys(t, englishGuide)
	for _, k := range want {
		if !slices.Contains(yamlEN, k) && !slices.Contains(textEN, k) {
			t.Errorf("README.md does not name the config key %s (SPEC §2)", k)
		}
	}

	_, textRU := guideKeys(t, russianGuide)
	for _, k := range want {
		if !slices.Contains(textRU, k) {
			t.Errorf("docs/ru/README.md does not explain the config key `%s` (SPEC §2)", k)
		}
	}
}

// The Russian guide's examples use only keys SPEC §2 names: a key that revision 2 removed
// (naming) or a misspelt one would stop camgate with exit 2 when an installer copies it.
func TestRussianGuideExamplesUseOnlySpecKeys(t *testing.T) {
	want := specKeys(t)
	inYAML, inText := guideKeys(t, russianGuide)
	if len(inYAML) == 0 {
		t.Fatal("docs/ru/README.md has no yaml example")
	}
	for _, k := range inYAML {
		if !slices.Contains(want, k) {
			t.Errorf("docs/ru/README.md's yaml example has %s, which SPEC §2 does not name", k)
		}
	}
	for _, k := range inText {
		// Text may name a section (`flussonic`) or a key path; both must exist in SPEC §2.
		if strings.Contains(k, ".") && !slices.Contains(want, k) {
			t.Errorf("docs/ru/README.md names the key `%s`, which SPEC §2 does not have", k)
		}
	}
}

// The English README's config block is SPEC §2's revision 2, key for key: every key it shows
// exists (a removed one such as naming, or revision 1's publish credentials, would be exit 2 for
// whoever copies it), and every SPEC §2 key is shown.
func TestEnglishGuideConfigBlockIsRevisionTwo(t *testing.T) {
	want := specKeys(t)
	inYAML, _ := guideKeys(t, englishGuide)
	for _, k := range inYAML {
		if !slices.Contains(want, k) {
			t.Errorf("README.md's yaml has %s, which SPEC §2 does not name", k)
		}
	}
	for _, k := range want {
		if !slices.Contains(inYAML, k) {
			t.Errorf("README.md's config block lacks SPEC §2's %s", k)
		}
	}
}

// The guides must not send the owner to SC's "add by Agent ID" form with camgate's agent_id:
// it is not a Flussonic Agent ID (SPEC §3), and that form looks IDs up at Flussonic's server.
// A paragraph that speaks of the Agent ID and tells the reader to type or enter it is refused.
func TestGuidesDoNotTellToTypeAgentIDIntoSC(t *testing.T) {
	for _, path := range []string{englishGuide, russianGuide} {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, para := range strings.Split(string(doc), "\n\n") {
			p := strings.Join(strings.Fields(strings.ToLower(strings.ReplaceAll(para, "_", " "))), " ")
			if !strings.Contains(p, "agent id") {
				continue
			}
			for _, verb := range []string{"type it", "enter it", "введите", "укажите"} {
				if strings.Contains(p, verb) {
					t.Errorf("%s sends the owner to type the agent_id into a form (%q):\n%s", path, verb, strings.TrimSpace(para))
				}
			}
		}
	}
}
