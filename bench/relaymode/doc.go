// Command relaymode measures what `relay: motion` saves on the uplink (issue 15): the bytes a
// real `camgate run` publishes to a stand-in Flussonic for a camera in `relay: motion` against
// one in `relay: always`, in the same run, from the same simulated camera.
//
// One daemon relays two cameras that read the same internal/sim camera (the embedded
// H.264+AAC clip, 1 s GOPs; or, with -gop, a clip ffmpeg makes at -bitrate with that GOP): "always"
// publishes all the time, "porch" in `relay: motion` with the daemon's defaults (pre_roll 5 s,
// post_roll 10 s, motion.hold 30 s: the program writes none of them into the config unless a
// flag changes it). Alarm mails go to camgate's SMTP server over loopback; a Watcher event
// sink stand-in takes the motion_started/motion_stopped events, so each episode's real start
// and stop are known. The stand-in Flussonic counts RTP payload bytes per track and places
// every frame in time by camgate's RTCP sender reports.
//
// It prints the always camera's bytes per second, each episode's bytes and span (first and
// last frame against the motion start and stop), the bytes published outside the episodes,
// and the per-day figures for a camera with 20 episodes of 30 s: at the clip's rate and scaled
// to 2 Mbit/s. Those per-day figures are an extrapolation from the measured episodes, and the
// output says so.
//
//	go run ./bench/relaymode -bin bin/camgate                  # 2 episodes, about 2 minutes
//	go run ./bench/relaymode -bin bin/camgate -episodes 5 -gop 100 -bitrate 2M
//
// It runs the daemon, not the rtsp.Relay library as bench/relay does, because the motion
// window (alarm → episode → pre_roll/post_roll) is the agent's: the library only has the gate
// it opens. Nothing leaves loopback. Needs ffmpeg only for -gop.
package main
