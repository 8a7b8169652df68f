package onvif

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnauthorized is matched (errors.Is) by every error that means the device refused the
// credentials, whichever way it said so.
var ErrUnauthorized = errors.New("credentials refused")

// ErrNotSupported is matched by faults that say the device does not implement an operation, so
// callers can fall back to an older call.
var ErrNotSupported = errors.New("operation not supported")

// ErrBasicRefused is the error of a device that asks for HTTP Basic authentication over plain
// http:// when the camera is not marked for it: the password was not sent.
var ErrBasicRefused = errors.New("the device asks for HTTP Basic authentication, which sends the password " +
	"in cleartext over http://: not sent; use https://, or mark the camera auth: basic to allow it")

// Fault is a SOAP fault returned by a device.
type Fault struct {
	Device  string // the XAddr the request went to
	Action  string // the operation, e.g. "GetProfiles"
	Code    string // e.g. "Sender", "Receiver" (SOAP 1.1: "Client", "Server")
	Subcode string // e.g. "NotAuthorized", "ActionNotSupported" (innermost, without prefix)
	Reason  string
}

func (f *Fault) Error() string {
	code := f.Code
	if f.Subcode != "" {
		code += "/" + f.Subcode
	}
	return fmt.Sprintf("onvif %s: %s: SOAP fault %s: %s", f.Device, f.Action, code, f.Reason)
}

// Is makes a fault match ErrUnauthorized or ErrNotSupported by its codes.
func (f *Fault) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return isAuthFault(f)
	case ErrNotSupported:
		s := strings.ToLower(f.Subcode + " " + f.Reason)
		return strings.Contains(s, "actionnotsupported") || strings.Contains(s, "notsupported") ||
			strings.Contains(s, "not implemented") || strings.Contains(s, "invalidaction")
	}
	return false
}

func isAuthFault(f *Fault) bool {
	s := strings.ToLower(f.Subcode + " " + f.Reason)
	return strings.Contains(s, "notauthorized") || strings.Contains(s, "failedauthentication") ||
		strings.Contains(s, "not authorized") || strings.Contains(s, "unauthorized")
}

// AuthError says a device refused the credentials after every authentication mode was tried.
type AuthError struct {
	Device   string
	Username string
	Tried    string // the modes tried, e.g. "WS-Security digest, HTTP digest"
	Cause    error
}

func (e *AuthError) Error() string {
	if e.Username == "" {
		return fmt.Sprintf("onvif %s: the device requires credentials and none are configured: %v", e.Device, e.Cause)
	}
	return fmt.Sprintf("onvif %s: credentials for user %q were refused (tried %s): %v",
		e.Device, e.Username, e.Tried, e.Cause)
}

func (e *AuthError) Unwrap() error { return e.Cause }

// Is makes every AuthError match ErrUnauthorized, even when the cause was a plain HTTP 401.
func (e *AuthError) Is(target error) bool { return target == ErrUnauthorized }
