// Package web serves the local pairing page (embedded static files) and its JSON API, which
// API.md documents.
//
// The home owner opens http://<gateway>:8080 on a phone, types the setup code and adds cameras.
// The page is on the LAN, so it is written to hold against a hostile device there too:
//
//   - only the LAN is served (internal/lan closes anyone else's connection unanswered);
//   - the setup code is compared in constant time; after 9 wrong codes in a minute a client is
//     refused, and after 300 from all clients together everyone is, so that one device cannot
//     lock the owner out and many addresses cannot guess fast;
//   - sessions live on the server behind a 256-bit HttpOnly, SameSite=Strict cookie; every state
//     change needs the session's CSRF token and a same-origin request; a new setup code
//     (Config.Code, `camgate pair-code --rotate`) ends every session;
//   - bodies are bounded and decoded strictly; text from devices is shown as text, and the
//     Content-Security-Policy allows no inline code;
//   - secrets are write-only: the server strips credentials from URLs and passwords from errors
//     itself, whatever the Backend hands it.
//
// The package must not reach into protocol packages: it asks the agent through Backend.
package web
