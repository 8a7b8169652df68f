// Package motion turns alarms from any source (alarm mails, ONVIF events) into motion episodes:
// one started and one stopped per episode, as SPEC §5 asks.
//
// The rules, in the order the tests state them:
//
//   - The first alarm of a camera starts an episode; every further alarm within motion.hold of the
//     last one joins it (debounce: several alarms inside one hold make one started/stopped pair).
//   - An episode stops motion.hold after its last alarm. Its end is that moment, last alarm +
//     hold, so the duration is the same however late Expire is called.
//   - ONVIF says when motion is over (State=false): the episode stops at once, unless an alarm
//     mail within the hold still speaks for it; then it stops at that mail + hold.
//   - Shutdown stops every open episode at the moment of the shutdown.
//   - Open episodes are persisted through Store. After a crash (SIGKILL, power loss) Restore ends
//     each persisted episode whose hold ran out while camgate was down at last alarm + hold, its
//     true end as far as anyone can know, and keeps the others open.
//   - Nothing is half-done: an alarm whose started event or episode record cannot be stored
//     leaves no open episode behind and returns the error, so the source can retry (an alarm mail
//     gets a 4xx and the camera sends it again).
//
// A Tracker is owned by one goroutine: it has no lock and starts none. Time comes from Config.Now,
// so tests step it by hand. It does no I/O of its own: Store and Emit, given by the caller, do.
// It knows nothing of event JSON; it hands out plain values (camera, motion id, start, end) for the
// uplink to format.
package motion
