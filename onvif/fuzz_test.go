package onvif

import (
	"net"
	"testing"
)

// The fuzz targets feed arbitrary bytes to every parser that reads what a device or the LAN
// sends. Seeds (real cameras' answers) are in testdata/fuzz and replay in every plain go test.

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><x/></s:Body></s:Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := parseEnvelope(data)
		if err != nil {
			return
		}
		if f := faultOf(body); f != nil {
			_ = f.Error()
			return
		}
		for _, res := range body.Children {
			_ = parseProfiles(res)
			_ = parseNotifications(res)
			_ = parsePresets(res)
			_, _ = parseSystemDateAndTime(res)
			for _, n := range parseNotifications(res) {
				_, _ = n.Motion()
			}
		}
	})
}

func FuzzParseDiscovery(f *testing.F) {
	f.Add([]byte(`<e:Envelope xmlns:e="x"><e:Body><Bye><EndpointReference>` +
		`<Address>urn:uuid:1</Address></EndpointReference></Bye></e:Body></e:Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, found, err := parseDiscovery(data, net.IPv4(10, 0, 0, 9))
		if err != nil {
			return
		}
		for _, d := range found {
			if d.EndpointRef == "" {
				t.Fatalf("device without endpoint reference: %+v", d)
			}
		}
	})
}

func FuzzAuthParams(f *testing.F) {
	f.Add(`realm="IP Camera(12345)", qop="auth,auth-int", nonce="4e6a4d7a", stale=FALSE, opaque=""`)
	f.Fuzz(func(t *testing.T, s string) {
		ch := newDigestChallenge(s)
		_ = ch.authorization("POST", "/onvif/device_service", "admin", "pw")
	})
}
