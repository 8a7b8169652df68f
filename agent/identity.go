package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// CameraIDFromMAC is the id of a camera whose hardware address is known (SPEC §3).
func CameraIDFromMAC(mac string) string {
	var b strings.Builder
	b.WriteString("cam-")
	for _, r := range strings.ToLower(mac) {
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CameraIDFromSerial is the id of an ONVIF camera without a known MAC: its vendor and serial
// number, hashed so that odd characters never reach topics or stream names.
func CameraIDFromSerial(vendor, serial string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(vendor)) + "\x00" + strings.TrimSpace(serial)))
	return "cam-s" + hex.EncodeToString(sum[:])[:11]
}

// CameraIDFromURL is the fallback id: a short hash of the stream URL without credentials, so
// that changing a password does not change the camera's identity.
func CameraIDFromURL(raw string) string {
	key := raw
	if u, err := url.Parse(raw); err == nil {
		u.User = nil
		u.Host = strings.ToLower(u.Host)
		key = u.String()
	}
	sum := sha256.Sum256([]byte(key))
	return "cam-u" + hex.EncodeToString(sum[:])[:11]
}

// agentIDCandidate derives the n-th candidate 10-digit agent_id for a camera. The first candidate
// is a pure function of gateway and camera, so it survives a lost database; later ones settle
// the rare collision and are remembered by the store.
func agentIDCandidate(gatewayID, cameraID string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", gatewayID, cameraID, n)))
	v := binary.BigEndian.Uint64(sum[:8])%9_000_000_000 + 1_000_000_000
	return fmt.Sprintf("%010d", v)
}

// assignAgentID returns the camera's agent_id: the one already assigned, or the first candidate
// that no other camera of this gateway holds.
func assignAgentID(gatewayID, cameraID string, assigned map[string]string) string {
	if id, ok := assigned[cameraID]; ok {
		return id
	}
	taken := make(map[string]bool, len(assigned))
	for _, id := range assigned {
		taken[id] = true
	}
	for n := 0; ; n++ {
		if id := agentIDCandidate(gatewayID, cameraID, n); !taken[id] {
			assigned[cameraID] = id
			return id
		}
	}
}
