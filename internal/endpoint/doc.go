// Package endpoint decides whether a secret given with one URL may go to another: a stored MQTT
// or publish password when the owner changes that URL without giving it again, a camera's
// credentials for another of its streams.
//
// A stored secret stays only with the endpoint it was given for: the same host and port,
// reached by the same scheme or by TLS (SecretMayStay). A camera's streams share its host
// (SameHost). It must not decide anything else, such as which hosts a
// client may reach (internal/lan) or where a redirect may go (internal/redirect).
package endpoint
