// Package redirect keeps credentials with the host they were given for when an HTTP server
// answers with a redirect.
//
// net/http drops the Authorization header when a redirect leaves the original domain, but it
// re-sends the body of a 307/308 (an ONVIF envelope carries its WS-Security token there) and
// every header it does not know to be a secret (an event sink's API key). So camgate's HTTP
// clients that carry credentials follow a redirect only within the same scheme, host and port,
// and fail with ErrOtherHost otherwise. It must not decide anything else about a request.
package redirect
