// Package packaging holds no code: it is the home of camgate's packages, built by build.sh
// with nfpm from nfpm.yaml (.deb with a systemd unit, .ipk with a procd init script) and
// checked by test.sh. Its Go tests keep the packaged default config, camgate.yaml, loadable
// and in step with the daemon's built-in defaults and the contract's keys. See README.md.
package packaging
