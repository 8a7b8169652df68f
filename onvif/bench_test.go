package onvif

import "testing"

// BenchmarkParseProfiles parses the largest recorded GetProfiles answer (Lorex, 21 kB): the
// cost of one inventory's heaviest parse on the gateway.
func BenchmarkParseProfiles(b *testing.B) {
	data := readFixture(b, "lorex", "GetProfiles.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		body, err := parseEnvelope(data)
		if err != nil {
			b.Fatal(err)
		}
		if len(parseProfiles(body.Children[0])) == 0 {
			b.Fatal("no profiles")
		}
	}
}

// BenchmarkParseNotifications parses a PullMessages answer with ten notifications (Pelco).
func BenchmarkParseNotifications(b *testing.B) {
	data := readFixture(b, "pelco-d6230l", "events.PullMessages.xml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ns, err := ParseNotifications(data)
		if err != nil || len(ns) != 10 {
			b.Fatal(len(ns), err)
		}
	}
}
