package web

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrorCode is the stable, machine-readable reason of an API error. The English "error" beside
// it is for people reading the API; the page shows its own words for the code, in its language,
// so a code once published keeps its meaning. API.md lists them.
type ErrorCode string

// The codes. A new one needs a line in API.md and an "err.<code>" entry in every catalogue under
// static/i18n (a test checks the catalogues).
const (
	// Generic codes, one per status, for errors that have no more specific code.
	CodeBadRequest       ErrorCode = "bad_request"
	CodeNotFound         ErrorCode = "not_found"
	CodeTimeout          ErrorCode = "timeout"
	CodeInternal         ErrorCode = "internal"
	CodeTooManyRequests  ErrorCode = "too_many_requests"
	CodeForbidden        ErrorCode = "forbidden"
	CodeUnauthorized     ErrorCode = "unauthorized"
	CodeMethodNotAllowed ErrorCode = "method_not_allowed"

	// The request as a whole.
	CodeBadBody              ErrorCode = "bad_body"
	CodeBodyTooLarge         ErrorCode = "body_too_large"
	CodeUnsupportedMediaType ErrorCode = "unsupported_media_type"
	CodeNoSuchEndpoint       ErrorCode = "no_such_endpoint"
	CodeWrongHost            ErrorCode = "wrong_host"
	CodeCrossOrigin          ErrorCode = "cross_origin"
	CodeCSRFToken            ErrorCode = "csrf_token"

	// Login and session.
	CodeLoginRequired   ErrorCode = "login_required"
	CodeWrongSetupCode  ErrorCode = "wrong_setup_code"
	CodeTooManyAttempts ErrorCode = "too_many_attempts"

	// Cameras and their streams.
	CodeStreamFailed       ErrorCode = "stream_failed"
	CodeCameraUnauthorized ErrorCode = "camera_unauthorized"
	CodeStreamTestsBusy    ErrorCode = "stream_tests_busy"
	CodeCameraOrURL        ErrorCode = "camera_or_url"
	CodeNothingToChange    ErrorCode = "nothing_to_change"
	// CodeCameraAddress: a camera URL from the page or MQTT names an address that is not a
	// camera on the home LAN (a host name, a public address, the gateway or camgate itself).
	CodeCameraAddress ErrorCode = "camera_address"
	CodeCameraExists  ErrorCode = "camera_exists"

	// One field of the request (the reply names it in "field").
	CodeRequired      ErrorCode = "required"
	CodeTooLong       ErrorCode = "too_long"
	CodeBadText       ErrorCode = "bad_text"
	CodeBadURL        ErrorCode = "bad_url"
	CodeBadScheme     ErrorCode = "bad_scheme"
	CodeBadValue      ErrorCode = "bad_value"
	CodeTopicWildcard ErrorCode = "topic_wildcard"
	CodeTooManySinks  ErrorCode = "too_many_sinks"
	CodePublishUser   ErrorCode = "publish_user"

	// The Wi-Fi QR form.
	CodeWiFiWPAPassword  ErrorCode = "wifi_wpa_password"
	CodeWiFiWEPKey       ErrorCode = "wifi_wep_key"
	CodeWiFiOpenPassword ErrorCode = "wifi_open_password"
)

// ErrCameraUnauthorized is wrapped by Backend errors that mean the camera refused the user name
// or password (RTSP or HTTP 401, an ONVIF NotAuthorized fault), so the page can say so in its
// language instead of quoting a protocol error.
var ErrCameraUnauthorized = errors.New("the camera refused the user name or password")

// errorReply is the body of every API error.
type errorReply struct {
	Error string    `json:"error"`
	Code  ErrorCode `json:"code"`
	Field string    `json:"field,omitempty"`
}

// statusCode is the generic code of an HTTP status, for errors without a more specific one.
func statusCode(status int) ErrorCode {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMediaType
	case http.StatusMisdirectedRequest:
		return CodeWrongHost
	case http.StatusUnprocessableEntity:
		return CodeStreamFailed
	case http.StatusTooManyRequests:
		return CodeTooManyRequests
	case http.StatusGatewayTimeout:
		return CodeTimeout
	default:
		return CodeInternal
	}
}

// writeError answers {"error": msg, "code": …} with the status's generic code.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeReply(w, status, errorReply{Error: msg, Code: statusCode(status)})
}

// writeCoded answers {"error": msg, "code": code}.
func writeCoded(w http.ResponseWriter, status int, code ErrorCode, msg string) {
	writeReply(w, status, errorReply{Error: msg, Code: code})
}

// writeInvalid answers a 400 for a validation error, with the field and code of a
// *BadRequestError, and any secret of the request replaced by ***.
func writeInvalid(w http.ResponseWriter, err error, secrets ...string) {
	reply := errorReply{Error: redact(err.Error(), secrets...), Code: CodeBadRequest}
	var bad *BadRequestError
	if errors.As(err, &bad) {
		reply.Field = bad.Field
		if bad.Code != "" {
			reply.Code = bad.Code
		}
	}
	writeReply(w, http.StatusBadRequest, reply)
}

func writeReply(w http.ResponseWriter, status int, reply errorReply) {
	b, err := json.Marshal(reply)
	if err != nil { // strings only, so not seen; still, the client gets an answer that parses
		b, status = []byte(`{"error":"the reply could not be encoded","code":"internal"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a client gone hears nothing
}
