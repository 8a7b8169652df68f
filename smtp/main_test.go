package smtp

import (
	"os"
	"testing"

	"github.com/emersion/go-message"
)

// TestMain installs the charset reader as cmd/camgate does at start.
func TestMain(m *testing.M) {
	message.CharsetReader = CharsetReader
	os.Exit(m.Run())
}
