// Package web serves the local pairing page (embedded static files) and its JSON API.
//
// It must not answer clients outside the LAN, must never return a secret, and must not reach into
// protocol packages directly: it asks the agent.
package web
