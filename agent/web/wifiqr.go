package web

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"
)

// WiFiNetwork is what a camera needs to join a Wi-Fi network by QR code.
type WiFiNetwork struct {
	SSID     string
	Password string
	Security string // WPA (also WPA2/WPA3 networks), WEP or nopass
	Hidden   bool
}

// wifiEscaper escapes the characters the ZXing Wi-Fi format reserves.
var wifiEscaper = strings.NewReplacer(`\`, `\\`, `;`, `\;`, `,`, `\,`, `:`, `\:`, `"`, `\"`)

// Validate checks the network against what Wi-Fi allows, so a camera is not handed a QR code it
// can never use.
func (n WiFiNetwork) Validate() error {
	switch {
	case n.SSID == "":
		return &BadRequestError{Field: "ssid", Code: CodeRequired, Reason: "is required"}
	case len(n.SSID) > 32:
		return &BadRequestError{Field: "ssid", Code: CodeTooLong, Reason: "is longer than 32 bytes"}
	case !utf8.ValidString(n.SSID) || !utf8.ValidString(n.Password):
		return &BadRequestError{Code: CodeBadText, Reason: "ssid and password must be UTF-8 text"}
	}
	switch n.Security {
	case "WPA":
		if l := len(n.Password); l < 8 || l > 63 {
			return &BadRequestError{
				Field:  "password",
				Code:   CodeWiFiWPAPassword,
				Reason: "a WPA password has 8 to 63 characters",
			}
		}
	case "WEP":
		if l := len(n.Password); l != 5 && l != 10 && l != 13 && l != 26 {
			return &BadRequestError{
				Field:  "password",
				Code:   CodeWiFiWEPKey,
				Reason: "a WEP key has 5 or 13 characters (10 or 26 hex digits)",
			}
		}
	case "nopass":
		if n.Password != "" {
			return &BadRequestError{Field: "password", Code: CodeWiFiOpenPassword, Reason: "must be empty for an open network"}
		}
	default:
		return &BadRequestError{Field: "type", Code: CodeBadValue, Reason: "must be WPA, WEP or nopass"}
	}
	return nil
}

// Payload returns the text of the QR code: WIFI:T:<type>;S:<ssid>;P:<password>;[H:true;];
// with \ ; , : " escaped by a backslash, as ZXing and the phone cameras that follow it read it.
func (n WiFiNetwork) Payload() string {
	var b strings.Builder
	fmt.Fprintf(&b, "WIFI:T:%s;S:%s;", n.Security, wifiEscaper.Replace(n.SSID))
	if n.Security != "nopass" {
		fmt.Fprintf(&b, "P:%s;", wifiEscaper.Replace(n.Password))
	}
	if n.Hidden {
		b.WriteString("H:true;")
	}
	b.WriteString(";")
	return b.String()
}

// PNG renders the payload as a QR code image of size pixels.
func (n WiFiNetwork) PNG(size int) ([]byte, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	png, err := qrcode.Encode(n.Payload(), qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("wifi qr: %w", err)
	}
	return png, nil
}
