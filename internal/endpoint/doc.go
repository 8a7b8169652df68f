// Package endpoint decides whether a secret stored with a URL (an MQTT or publish password)
// may stay when the owner changes that URL without giving the secret again.
//
// A secret stays only with the endpoint it was given for: the same host and port, reached
// by the same scheme or by TLS. It must not decide anything else, such as which hosts a
// client may reach (internal/lan) or where a redirect may go (internal/redirect).
package endpoint
