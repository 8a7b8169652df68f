package rtsp

import "testing"

// The governor's goroutine owns its policy alone. When the last relay leaves and another joins
// at once, the goroutine that was told to stop must not take up the members of the one the
// join starts: two owners of one camera's state is a data race (go test -race finds it here).
func TestQualityGovernorHasOneOwnerAcrossARestart(t *testing.T) {
	g := NewQualityGovernor()
	for range 300 {
		leave := g.join(&Relay{}, "cam", 0, true)
		leave()
	}
	leave := g.join(&Relay{}, "cam", 0, true)
	leave()
}
