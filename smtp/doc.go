// Package smtp is the SMTP server that receives cameras' alarm e-mails and turns each mail into a
// plain value: which camera, whether it reports motion, and its JPEG snapshot if any.
//
// Nothing a client sends may crash or stall it: sizes, lines, sessions and time are bounded. It
// knows nothing of the agent or of where the alarm goes next.
//
// The protocol is github.com/emersion/go-smtp; this package adds what cameras need and what a
// gateway must defend against:
//
//   - AUTH PLAIN and LOGIN over plain TCP (cameras rarely do TLS). With a configured username
//     AUTH is required, or with Config.AuthOptional checked when tried; without one any
//     credentials pass, because many cameras insist on logging in.
//   - Wrong logins are throttled per client (its address, or its /64 for IPv6, as at the page's
//     login): after five in a minute, AUTH gets 454 unexamined until the minute is over, and
//     the log has one line per burst. An attempt counts when its credentials arrive, before
//     they are compared, and is taken back if they were right: parallel sessions get no more
//     guesses judged than one.
//   - Lines of any length inside a mail (DATA or BDAT), yet command lines bounded to 16 KiB:
//     go-smtp can only bound both or neither, so the connection under it (sessionConn) follows
//     the byte stream to tell commands from mail content.
//   - Mails over Config.MaxMessageBytes get 552; the session and the server go on.
//   - Time: a deadline per command line, a longer one per mail transfer, and a lifetime per
//     session, so one byte a second holds nothing for long.
//   - Memory: sessions, mails being read, their headers and snapshots take their bytes from one
//     budget (Config.MemoryBudget, 16 MiB) before they hold them. Headers are charged what
//     go-message holds of them (about 400 bytes a line): the message's, and each part's on the
//     way down to the part being read, given back once the next part replaced it; the meter
//     (headermeter.go) follows the boundaries the mail declares, so "--" lines in a body that
//     no multipart splits cost nothing. When the budget is spent, sessions staler than the one
//     asking that hold a mail (stalled uploads) are closed, up to eight per reservation; a
//     session idle between mails is never closed for memory (it frees little and a camera
//     loses its connection), and a session that already holds more than an honest camera mail
//     needs (mailAllowance: its session, mail, snapshot twice and ~700 header lines) closes no
//     other: it is the one refused. If there is no room, a new connection gets 421, a mail 452,
//     and a snapshot is dropped while its alarm counts.
//   - Sessions: at most Config.MaxSessions. A new connection on a full server evicts the session
//     that has gone longest without completing a command or a mail; a camera completes its
//     commands in milliseconds, so clients that trickle bytes or sit idle are the ones that go.
//   - Errors: a session that earns ten 5xx replies (garbage, password guessing) is closed;
//     go-smtp itself closes after four unknown or malformed commands.
//   - Who may connect is decided by an internal/lan Policy before the greeting: a denied
//     connection is closed without a byte.
//
// ParseMail does the MIME side with go-message and its charset tables (GB2312/GBK, Big5,
// windows-1251, KOI8-R, UTF-8...): RFC 2047 subjects, raw 8-bit subjects (read as the body's
// charset, else GB18030), base64 and quoted-printable bodies, multiparts nested up to 8 deep,
// and the first JPEG (recognised by its FF D8 FF magic, whatever its Content-Type) up to
// MaxSnapshotBytes.
package smtp
