// Package smtp is the SMTP server that receives cameras' alarm e-mails and turns each mail into a
// plain value: which camera, whether it reports motion, and its JPEG snapshot if any.
//
// Nothing a client sends may crash or stall it: sizes, lines, sessions and time are bounded. It
// knows nothing of the agent or of where the alarm goes next.
package smtp
